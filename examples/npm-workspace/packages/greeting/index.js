exports.greet = () => "hello from packages/greeting";

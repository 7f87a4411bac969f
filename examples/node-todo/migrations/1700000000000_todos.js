exports.up = (pgm) => {
  pgm.createTable("todos", {
    id: "id",
    title: { type: "text", notNull: true },
    created_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
  });
};

exports.down = (pgm) => {
  pgm.dropTable("todos");
};

"""tally: a counter service in a src/ layout, as `pdm init` lays a package out."""

fetch("/api/todos")
  .then((r) => r.json())
  .then((todos) => {
    const ul = document.getElementById("todos");
    for (const t of todos) {
      const li = document.createElement("li");
      li.textContent = t.title;
      ul.appendChild(li);
    }
  });

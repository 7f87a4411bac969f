from fastapi import FastAPI
from greeting import hello

app = FastAPI(title="backend")


@app.get("/health")
def health():
    return {"ok": True, "greeting": hello("apphost")}

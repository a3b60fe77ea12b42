from pqlsdk.collector import create_app

# The same app `pqlsdk collector` serves, for your own ASGI server:
#   uvicorn asgi:app --host 0.0.0.0 --port 8787
app = create_app(
    "sqlite:///collector.db",  # or "postgresql://pql@db.internal/pql"
    write_keys=["wk_live_1"],
    feed_keys=["fk_sales"],
)

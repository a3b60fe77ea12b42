from celery import Celery

import pqlsdk
from pqlsdk.integrations import celery as pqlsdk_celery

app = Celery("tasks")
client = pqlsdk.Client(store="sqlite:///pqlsdk.db", rules="playbook.toml")
pqlsdk_celery.install(app)  # deliver what a pool process tracked when it exits
# pqlsdk_celery.install(app, flush_after_task=client)  # ...and after every task


@app.task
def import_finished(user_id, rows):
    client.track(user_id, "import_completed", {"rows": rows})

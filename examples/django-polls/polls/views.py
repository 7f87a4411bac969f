import json

from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .models import Question


def health(request):
    applied = MigrationRecorder(connection).applied_migrations()
    return JsonResponse({"ok": True, "polls": sorted(name for app, name in applied if app == "polls")})


@csrf_exempt
def questions(request):
    if request.method == "POST":
        q = Question.objects.create(text=json.loads(request.body)["text"])
        return JsonResponse({"id": q.id, "text": q.text}, status=201)
    return JsonResponse([{"id": q.id, "text": q.text} for q in Question.objects.order_by("id")], safe=False)

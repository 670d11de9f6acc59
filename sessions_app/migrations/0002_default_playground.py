from django.db import migrations


def create_default_playground(apps, schema_editor):
    Playground = apps.get_model("sessions_app", "Playground")
    Playground.objects.get_or_create(pk="default", defaults={"description": "A Docker host of your own."})


class Migration(migrations.Migration):
    dependencies = [("sessions_app", "0001_initial")]

    operations = [migrations.RunPython(create_default_playground, migrations.RunPython.noop)]

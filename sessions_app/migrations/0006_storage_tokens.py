from django.db import migrations, models

import sessions_app.models


def name_existing_storage_by_session(apps, schema_editor):
    # Instances made before storage tokens have their disk and volume named
    # after the session: keeping that name lets the backend find them.
    for model, session_field in (("Instance", "session_id"), ("PreparedSession", "id")):
        rows = apps.get_model("sessions_app", model).objects
        rows.update(storage_token=models.F(session_field))


class Migration(migrations.Migration):
    dependencies = [
        ("sessions_app", "0005_prepared_sessions"),
    ]

    operations = [
        migrations.AddField(
            model_name="instance",
            name="storage_token",
            field=models.CharField(default="", editable=False, help_text="Names its disk and volume.", max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="preparedsession",
            name="storage_token",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(name_existing_storage_by_session, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="instance",
            name="storage_token",
            field=models.CharField(
                default=sessions_app.models.new_storage_token,
                editable=False,
                help_text="Names its disk and volume.",
                max_length=64,
            ),
        ),
        migrations.AlterField(
            model_name="preparedsession",
            name="storage_token",
            field=models.CharField(default=sessions_app.models.new_storage_token, editable=False, max_length=64),
        ),
    ]

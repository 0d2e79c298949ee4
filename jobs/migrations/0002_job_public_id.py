"""Job ids per owner: the id a client sees (public_id) is unique within its owner, not globally."""

from django.db import migrations, models


def copy_ids(apps, schema_editor):
    # Every existing job was known by its internal id.
    apps.get_model("jobs", "Job").objects.update(public_id=models.F("id"))


class Migration(migrations.Migration):
    dependencies = [("jobs", "0001_initial")]

    operations = [
        migrations.AddField(model_name="job", name="public_id", field=models.CharField(default="", max_length=200), preserve_default=False),
        migrations.RunPython(copy_ids, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.UniqueConstraint(fields=("owner", "public_id"), name="jobs_job_owner_public_id_uniq"),
        ),
    ]

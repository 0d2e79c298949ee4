"""Sweep indexes: one partial index per sweep query, so a sweep reads only the rows it may act on."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0002_job_public_id'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='job',
            name='jobs_job_state_run_at_idx',
        ),
        migrations.RemoveIndex(
            model_name='job',
            name='jobs_job_state_sent_at_idx',
        ),
        migrations.RemoveIndex(
            model_name='job',
            name='jobs_job_state_lock_idx',
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(condition=models.Q(('state', 'delayed')), fields=['run_at'], name='jobs_job_due_idx'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(condition=models.Q(('state', 'active')), fields=['lock_until'], name='jobs_job_locked_idx'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(condition=models.Q(('sent_at__isnull', True), ('state', 'waiting')), fields=['run_at'], name='jobs_job_unsent_idx'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(condition=models.Q(('sent_at__isnull', False), ('state', 'waiting')), fields=['sent_at'], name='jobs_job_sent_idx'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(fields=['state', '-created_at'], name='jobs_job_state_created_idx'),
        ),
    ]

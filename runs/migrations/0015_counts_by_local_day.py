from django.conf import settings
from django.db import migrations, models


def drop_triggers(apps, schema_editor):
    from runs.counts import drop_sql

    for statement in drop_sql(schema_editor.connection.vendor):
        schema_editor.execute(statement, params=None)


def count_by_site_days(apps, schema_editor):
    from runs.counts import rebuild

    rebuild(schema_editor.connection, settings.TIME_ZONE)


class Migration(migrations.Migration):
    """The charts' counts by day of the site's time zone instead of by UTC hour: a month
    is 24 times fewer rows to add up (runs.counts)."""

    dependencies = [
        ('runs', '0014_failure_summary_and_search'),
    ]

    operations = [
        migrations.RunPython(drop_triggers, drop_triggers),
        migrations.DeleteModel(name='RunCount'),
        migrations.CreateModel(
            name='RunCount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.BigIntegerField()),
                ('bucket', models.CharField(max_length=16)),
                ('n', models.IntegerField(default=0)),
                ('seconds', models.FloatField(default=0)),
                ('timed', models.IntegerField(default=0)),
                ('profile', models.ForeignKey(db_constraint=False, on_delete=models.deletion.CASCADE, related_name='+', to='runs.environmentprofile')),
            ],
            options={
                'indexes': [models.Index(fields=['day', 'profile'], name='runcount_day')],
                'constraints': [models.UniqueConstraint(fields=('profile', 'day', 'bucket'), name='runcount_one_per_part')],
            },
        ),
        migrations.CreateModel(
            name='RunCountZone',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('zone', models.CharField(max_length=64)),
            ],
        ),
        migrations.RunPython(count_by_site_days, drop_triggers),
    ]

from django.db import migrations, models


class Migration(migrations.Migration):
    """"Follow" and "sweep" named one subsystem; it is the sweep now."""

    dependencies = [
        ("runs", "0007_lifecycle_on_the_model"),
    ]

    operations = [
        migrations.RenameModel(old_name="FollowState", new_name="SweepState"),
        migrations.AlterField(
            model_name="sweepstate",
            name="profile",
            field=models.OneToOneField(on_delete=models.deletion.CASCADE,
                                       related_name="sweep_state",
                                       to="runs.environmentprofile"),
        ),
    ]

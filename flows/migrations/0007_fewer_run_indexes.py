"""A run's flow is looked up through the (flow, -started_at) index: the index of flow_id alone goes.
Only that index is dropped (no table rebuild on SQLite, as AlterField would do)."""
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("flows", "0006_flow_source_state"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="flowrun",
                    name="flow",
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                            related_name="runs", to="flows.flow"),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "flows_flowrun_flow_id_9cbb3a32"',
                    'CREATE INDEX "flows_flowrun_flow_id_9cbb3a32" ON "flows_flowrun" ("flow_id")',
                ),
            ],
        ),
    ]

"""Fewer indexes to write at each message's insert and status change: owner, listener and flow are
looked up through their (column, -received_at) indexes, and resubmitted_from is indexed only where
set. Only indexes are dropped and made (no table rebuild on SQLite, as AlterField would do)."""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

DROPPED = {  # column -> the name Django gave its index
    "flow_id": "listeners_message_flow_id_4174dd8c",
    "listener_id": "listeners_message_listener_id_00741f78",
    "owner_id": "listeners_message_owner_id_8b978351",
    "resubmitted_from_id": "listeners_message_resubmitted_from_id_bd89ee04",
}


class Migration(migrations.Migration):

    dependencies = [
        ("flows", "0007_fewer_run_indexes"),
        ("listeners", "0006_listener_expected_gap"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="flow",
                    field=models.ForeignKey(blank=True, db_index=False, null=True,
                                            on_delete=django.db.models.deletion.SET_NULL, related_name="messages",
                                            to="flows.flow"),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="listener",
                    field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                            related_name="messages", to="listeners.listener"),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="owner",
                    field=models.ForeignKey(db_index=False, help_text="Owner of the listener at arrival; keeps the "
                                            "message visible if the listener goes.", null=True,
                                            on_delete=django.db.models.deletion.SET_NULL, related_name="+",
                                            to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="resubmitted_from",
                    field=models.ForeignKey(blank=True, db_index=False, null=True,
                                            on_delete=django.db.models.deletion.SET_NULL, related_name="+",
                                            to="listeners.message"),
                ),
            ],
            database_operations=[
                migrations.RunSQL(f'DROP INDEX IF EXISTS "{name}"', f'CREATE INDEX "{name}" ON "listeners_message" ("{column}")')
                for column, name in DROPPED.items()
            ],
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(condition=models.Q(("resubmitted_from__isnull", False)), fields=["resubmitted_from"],
                               name="message_resubmitted_from"),
        ),
    ]

"""Recording configuration changes made through the API into the audit log."""
from __future__ import annotations

from .models import AuditEntry

SECRET_FIELDS = {"secrets"}
IGNORED_FIELDS = {"created_at", "updated_at", "version", "url"}


def record_change(user, action: str, obj, before: dict | None, after: dict | None, secrets_given=None) -> AuditEntry:
    """Store who did what to `obj`; `before`/`after` are API representations (never secret values)."""
    before, after = before or {}, after or {}
    changes = {}
    for field in sorted(set(before) | set(after)):
        if field in IGNORED_FIELDS or field in SECRET_FIELDS:
            continue
        if before.get(field) != after.get(field):
            changes[field] = [before.get(field), after.get(field)]
    if secrets_given:
        changes["secrets"] = ["***", f"*** ({', '.join(sorted(secrets_given))} set)"]
    return AuditEntry.objects.create(
        user=user if getattr(user, "is_authenticated", False) else None,
        action=action,
        object_type=obj._meta.model_name,
        object_id=str(obj.pk),
        object_name=str(getattr(obj, "name", "") or obj)[:200],
        changes=changes,
    )

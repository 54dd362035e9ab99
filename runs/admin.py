from __future__ import annotations

import json

from django.contrib import admin, messages
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters

from runs import audit, service, tokens
from runs.admin_base import ReadOnlyAdmin
from runs.forms import ProfileForm
from runs.http import client_ip
from runs.models import ApiToken, AuditEntry, EnvironmentProfile, Preset, Run, RunEvent

AuthType = EnvironmentProfile.AuthType

SECRET_ACTIONS = {
    "stored": audit.Action.CREDENTIAL_STORED,
    "replaced": audit.Action.CREDENTIAL_REPLACED,
    "cleared": audit.Action.CREDENTIAL_CLEARED,
}


def _profile_target(profile: EnvironmentProfile) -> str:
    return f"profile {profile.pk} {profile.name}"


def _audit_profile_save(request, profile, form, change, secret_changes) -> None:
    """One entry for the profile (changed field names), one per secret (its name only)."""
    secret_fields = set(form.SECRET_FIELDS) | {f"clear_{n}" for n in form.SECRET_FIELDS}
    fields = [form.fields[n].label for n in form.changed_data if n not in secret_fields]
    action = audit.Action.PROFILE_CHANGED if change else audit.Action.PROFILE_CREATED
    target = _profile_target(profile)
    if fields or not change:
        audit.record_request(request, action, target=target, details={"fields": fields})
    for secret in secret_changes:
        details = {"field": form.fields[secret.name].label}
        if secret.reason:
            details["reason"] = secret.reason
        if secret.name == "private_key" and secret.what != "cleared":
            details["fingerprint"] = profile.private_key_fingerprint
        audit.record_request(request, SECRET_ACTIONS[secret.what], target=target,
                             details=details)


@admin.register(EnvironmentProfile)
class EnvironmentProfileAdmin(admin.ModelAdmin):
    form = ProfileForm
    list_display = ["name", "environment_id", "base_url", "snowflake_auth_type", "key_summary",
                    "pat_expiry", "updated_at"]
    list_filter = ["snowflake_auth_type"]
    search_fields = ["name", "environment_id"]
    actions = ["test_connection"]
    readonly_fields = ["key_status"]
    # One fieldset per auth type's secrets. Only the current type's is shown: the others
    # carry "auth-inactive", hidden by profile_admin.css; profile_admin.js switches them as
    # the type changes. Without JavaScript, a changed type shows its fields once saved
    # (the save asks for the secrets the new type needs).
    AUTH_FIELDSETS = {
        AuthType.BASIC: ("Basic: password or programmatic access token", [
            "snowflake_password", "clear_snowflake_password", "snowflake_password_is_pat",
            "snowflake_pat_expires_on"]),
        AuthType.KEYPAIR: ("KeyPair: private key", [
            "key_status", "private_key", "clear_private_key",
            "private_key_passphrase", "clear_private_key_passphrase"]),
    }

    class Media:
        css = {"all": ["runs/profile_admin.css"]}
        js = ["runs/profile_admin.js"]

    def get_fieldsets(self, request, obj=None):
        current = self._auth_type(request, obj)
        fieldsets = [
            (None, {"fields": ["name", "base_url", "environment_id", "api_token",
                               "default_job_id", "default_parallelism", "organization_id",
                               "allowed_groups"]}),
            ("Snowflake credentials", {"fields": [
                "snowflake_auth_type", "snowflake_username", "snowflake_warehouse",
                "snowflake_role"]}),
        ]
        for auth_type, (title, fields) in self.AUTH_FIELDSETS.items():
            classes = ["auth-type", f"auth-{auth_type}"]
            if auth_type != current:
                classes.append("auth-inactive")
            fieldsets.append((title, {"fields": fields, "classes": classes}))
        return fieldsets

    @staticmethod
    def _auth_type(request, obj) -> str:
        posted = request.POST.get("snowflake_auth_type") if request.method == "POST" else None
        if posted in AuthType.values:
            return posted
        return obj.snowflake_auth_type if obj is not None else AuthType.KEYPAIR

    @admin.display(description="Key status")
    def key_status(self, profile: EnvironmentProfile | None) -> str:
        """Its own line: what is stored, the fingerprint, and the statement that gives
        the Snowflake user the public key, ready to copy."""
        if profile is None or not profile.has_secret("private_key"):
            return "No key stored."
        status = profile.secret_status("private_key")
        if not profile.private_key_public:
            return format_html("{}<br>Save the key again to show its ALTER USER statement.",
                               status)
        user = profile.snowflake_username or "<user>"
        statement = f"ALTER USER {user} SET RSA_PUBLIC_KEY='{profile.private_key_public}';"
        return format_html(
            '{}<br>Fingerprint: <code>{}</code><br>'
            '<label for="alter-user-statement">In Snowflake, run:</label><br>'
            '<textarea id="alter-user-statement" class="copy-text" readonly rows="4" '
            'cols="66">{}</textarea>',
            status, profile.private_key_fingerprint, statement)

    @admin.display(description="PAT")
    def pat_expiry(self, profile: EnvironmentProfile) -> str:
        return profile.pat_expiry_note or "—"

    @admin.display(description="Private key")
    def key_summary(self, profile: EnvironmentProfile) -> str:
        if not profile.has_secret("private_key"):
            return "—"
        return f"RSA {profile.private_key_size}, {profile.private_key_fingerprint}"

    # Django's debug page and error e-mails must never show what was posted here.
    @method_decorator(sensitive_post_parameters(*EnvironmentProfile.SECRETS))
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "GET" and object_id:
            profile = self.get_object(request, object_id)
            if profile is not None and profile.pat_expiry_warning:
                # The warning where the admin can act on it: store the new token here.
                messages.warning(request, f"{profile.name}: {profile.pat_expiry_note}.")
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        secret_changes = form.apply_secrets(obj, by=request.user.get_username())
        super().save_model(request, obj, form, change)
        if form.normalised_key is not None and form.normalised_key.reencrypted:
            messages.info(request, "The key used a legacy encryption scheme; the stored copy was "
                          "re-encrypted with the same passphrase (AES-256-CBC, PBKDF2).")
        form.secret_changes = [form.describe(c) for c in secret_changes]
        _audit_profile_save(request, obj, form, change, secret_changes)

    def construct_change_message(self, request, form, formsets, add=False):
        # Django records which fields changed (labels only); add what happened to each
        # secret, again by name only, never by value.
        message = super().construct_change_message(request, form, formsets, add)
        for change in getattr(form, "secret_changes", []):
            message.append({"changed": {"fields": [change]}})
        return message

    def delete_model(self, request, obj):
        target = _profile_target(obj)
        super().delete_model(request, obj)
        audit.record_request(request, audit.Action.PROFILE_DELETED, target=target)

    def delete_queryset(self, request, queryset):
        targets = [_profile_target(p) for p in queryset]
        super().delete_queryset(request, queryset)
        for target in targets:
            audit.record_request(request, audit.Action.PROFILE_DELETED, target=target)

    @admin.action(description="Test connection")
    def test_connection(self, request, queryset):
        for profile in queryset:
            report = service.test_connection(profile)
            level = messages.ERROR if report.problem else messages.SUCCESS
            self.message_user(request, f"{profile.name}: {report.summary()}", level)


class RunEventInline(admin.TabularInline):
    model = RunEvent
    fields = ["at", "kind", "message", "actor"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "created_by", "profile", "job_id", "status",
                    "coalesce_status", "run_counter"]
    list_filter = ["status", "coalesce_status", "force", "profile"]
    list_select_related = ["created_by", "profile"]
    search_fields = ["=run_counter"]
    date_hierarchy = "created_at"
    inlines = [RunEventInline]
    exclude = ["request_body"]
    readonly_fields = ["request_as_sent"]

    @admin.display(description="Request as sent (secrets shown as [secret])")
    def request_as_sent(self, run: Run) -> str:
        return json.dumps(run.request_body, indent=2, sort_keys=True)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["seq", "at", "actor", "ip", "action", "target"]
    list_filter = ["action"]
    search_fields = ["actor", "target"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Everyone's API tokens: who, which scopes, when last used; an admin may revoke them.
    Tokens are made on the API tokens page by their owner (the admin never sees one)."""

    list_display = ["name", "user", "prefix", "scopes", "created_at", "expires_at",
                    "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["user", "name", "prefix", "scopes", "created_at", "expires_at",
                       "last_used_at", "revoked_at", "revoked_by"]
    exclude = ["digest"]
    actions = ["revoke_tokens"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # revoked tokens stay, as evidence of who could call the API

    @admin.action(description="Revoke the selected tokens")
    def revoke_tokens(self, request, queryset):
        ip = client_ip(request)
        count = sum(tokens.revoke(token, by=request.user, ip=ip)
                    for token in queryset.select_related("user"))
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)

@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    """Saved run forms: admins can see, rename, unshare or delete them (never a force
    option: presets have none)."""

    list_display = ("name", "profile", "owner", "shared", "job_id", "updated_at")
    list_filter = ("profile", "shared")
    search_fields = ("name", "owner__username", "include_selector", "exclude_selector")
    raw_id_fields = ("owner",)
    readonly_fields = ("created_at", "updated_at")


from runs.notifications import admin as notifications_admin  # noqa: E402, F401 (registers)

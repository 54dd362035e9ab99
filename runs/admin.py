from __future__ import annotations

from django.contrib import admin, messages
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from runs.coalesce import CoalesceClient, CoalesceError
from runs.encryption import CredentialDecryptionError
from runs.forms import ProfileForm
from runs.models import EnvironmentProfile

SECRET_POST_FIELDS = ("api_token", "snowflake_password", "private_key", "private_key_passphrase")


@admin.register(EnvironmentProfile)
class EnvironmentProfileAdmin(admin.ModelAdmin):
    form = ProfileForm
    list_display = ["name", "environment_id", "base_url", "snowflake_auth_type", "key_summary",
                    "updated_at"]
    list_filter = ["snowflake_auth_type"]
    search_fields = ["name", "environment_id"]
    filter_horizontal = ["allowed_groups"]
    actions = ["test_connection"]
    fieldsets = [
        (None, {"fields": ["name", "base_url", "environment_id", "api_token", "default_job_id",
                           "default_parallelism", "allowed_groups"]}),
        ("Snowflake credentials", {"fields": [
            "snowflake_auth_type", "snowflake_username",
            "snowflake_password", "clear_snowflake_password",
            "private_key", "clear_private_key",
            "private_key_passphrase", "clear_private_key_passphrase",
            "snowflake_warehouse", "snowflake_role",
        ]}),
    ]

    @admin.display(description="Private key")
    def key_summary(self, profile: EnvironmentProfile) -> str:
        if not profile.has_secret("private_key"):
            return "—"
        return f"RSA {profile.private_key_size}, {profile.private_key_fingerprint}"

    # Django's debug page and error e-mails must never show what was posted here.
    @method_decorator(sensitive_post_parameters(*SECRET_POST_FIELDS))
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        changes = form.apply_secrets(obj, by=request.user.get_username())
        super().save_model(request, obj, form, change)
        if form.normalised_key is not None and form.normalised_key.reencrypted:
            messages.info(request, "The key used a legacy encryption scheme; the stored copy was "
                          "re-encrypted with the same passphrase (AES-256-CBC, PBKDF2).")
        form.secret_changes = changes  # read by construct_change_message below

    def construct_change_message(self, request, form, formsets, add=False):
        # Django records which fields changed (labels only); add what happened to each
        # secret, again by name only, never by value.
        message = super().construct_change_message(request, form, formsets, add)
        for change in getattr(form, "secret_changes", []):
            message.append({"changed": {"fields": [change]}})
        return message

    @admin.action(description="Test connection")
    def test_connection(self, request, queryset):
        for profile in queryset:
            try:
                client = CoalesceClient(profile.base_url, profile.get_secret("api_token"))
                client.test_connection()
            except CoalesceError as exc:
                self.message_user(request, f"{profile.name}: {exc.message}", messages.ERROR)
            except CredentialDecryptionError:
                self.message_user(request, f"{profile.name}: the stored API token cannot be "
                                  "decrypted with the configured keys.", messages.ERROR)
            else:
                self.message_user(request, f"{profile.name}: connected to Coalesce.",
                                  messages.SUCCESS)

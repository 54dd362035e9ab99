from __future__ import annotations

import uuid
from dataclasses import dataclass

from django import forms
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join
from django.views.decorators.debug import sensitive_variables

from runs import private_keys, selectors, validators
from runs.encryption import CredentialDecryptionError
from runs.limits import MAX_PARAMETERS, clean_selector, parameter_problem
from runs.models import (
    MAX_PARALLELISM,
    EnvironmentProfile,
    NotificationPreference,
    Preset,
)
from runs.service import RunRequest

AuthType = EnvironmentProfile.AuthType


class SecretTextarea(forms.Textarea):
    """A textarea that never renders a value, so a form re-displayed with errors cannot
    echo a pasted private key back into the page."""

    def format_value(self, value):
        return ""


class SecretInput(forms.PasswordInput):
    def __init__(self, attrs=None):
        super().__init__(attrs={"autocomplete": "off", **(attrs or {})}, render_value=False)


class DatalistInput(forms.TextInput):
    """A text input that suggests values (the official regions) yet accepts any text."""

    def __init__(self, options: list[tuple[str, str]], list_id: str, attrs=None):
        super().__init__(attrs={"list": list_id, "size": 60, **(attrs or {})})
        self.options, self.list_id = options, list_id

    def render(self, name, value, attrs=None, renderer=None):
        items = format_html_join(
            "", '<option value="{}">{}</option>', ((url, label) for url, label in self.options)
        )
        datalist = format_html('<datalist id="{}">{}</datalist>', self.list_id, items)
        return super().render(name, value, attrs, renderer) + datalist


@dataclass(frozen=True)
class SecretChange:
    name: str  # one of EnvironmentProfile.SECRETS
    what: str  # "stored", "replaced" or "cleared"
    reason: str = ""


def _clear_field(label: str) -> forms.BooleanField:
    return forms.BooleanField(label=label, required=False)


class ProfileForm(forms.ModelForm):
    """The admin's profile page, including the write-only Snowflake secrets.

    Secret fields are plain form fields, not model fields: empty means "keep what is
    stored", a Clear box removes it, and nothing stored is ever put back into a widget.
    Call `apply_secrets(profile, by=...)` before saving the instance.
    """

    api_token = forms.CharField(label="Coalesce API token", required=False, widget=SecretInput)
    snowflake_password = forms.CharField(
        label="Snowflake password", required=False, strip=False, widget=SecretInput
    )
    clear_snowflake_password = _clear_field("Clear the stored password")
    private_key = forms.CharField(
        label="Private key (PEM)",
        required=False,
        strip=False,
        widget=SecretTextarea(
            attrs={
                "rows": 8,
                "cols": 66,
                "class": "pem-input",
                "spellcheck": "false",
                "autocomplete": "off",
            }
        ),
    )
    clear_private_key = _clear_field("Clear the stored key")
    private_key_passphrase = forms.CharField(
        label="Private key passphrase", required=False, strip=False, widget=SecretInput
    )
    clear_private_key_passphrase = _clear_field("Clear the stored passphrase")

    SECRET_FIELDS = EnvironmentProfile.SECRETS

    class Media:
        # A stylesheet, not a style attribute: the Content-Security-Policy refuses inline
        # styles, in the admin too.
        css = {"all": ["runs/admin.css"]}

    class Meta:
        model = EnvironmentProfile
        fields = [
            "name",
            "base_url",
            "environment_id",
            "default_job_id",
            "default_parallelism",
            "organization_id",
            "allowed_groups",
            "snowflake_auth_type",
            "snowflake_username",
            "snowflake_password_is_pat",
            "snowflake_pat_expires_on",
            "snowflake_warehouse",
            "snowflake_role",
        ]
        widgets = {
            "snowflake_pat_expires_on": forms.DateInput(attrs={"type": "date"}),
            "base_url": DatalistInput(validators.OFFICIAL_BASE_URLS, "coalesce-base-urls"),
            # Checkboxes, not the admin's two-box filter: its script adds ARIA that axe
            # rejects, and a few groups read fine as a list.
            "allowed_groups": forms.CheckboxSelectMultiple,
        }
        help_texts = {
            "base_url": "An official regional host, or a custom https host listed in "
            "COALESCE_ALLOWED_HOSTS.",
            "snowflake_username": "The Snowflake login name (Basic and KeyPair).",
            "snowflake_warehouse": 'Unquoted names are upper-cased by Snowflake; quote exact '
            'names, e.g. "Reporting WH".',
            "snowflake_role": 'Unquoted names are upper-cased by Snowflake; quote exact names, '
            'e.g. "Data Team".',
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.normalised_key: private_keys.NormalisedKey | None = None
        for name in self.SECRET_FIELDS:
            self.fields[name].help_text = self._status_text(name)
        # The stored key's status has its own line on the page (the admin's Key status).
        self.fields["private_key"].help_text = (
            "Paste the whole file, including the -----BEGIN/END----- lines "
            "(Snowflake's recipe: rsa_key.p8). Leave empty to keep the stored key."
        )

    def _status_text(self, name: str) -> str:
        if self.instance.pk is None:
            return "Not stored."
        return self.instance.secret_status(name)

    RETYPE = "Type it again: secrets are never sent back to the page, so it was not kept. "

    def full_clean(self) -> None:
        """After an error the page comes back with every secret field empty (a secret is
        never echoed into HTML): say so next to each one that had been typed."""
        super().full_clean()
        if not self.is_bound or not self.errors:
            return
        for name in self.SECRET_FIELDS:
            if self.data.get(self.add_prefix(name)):
                self.fields[name].help_text = self.RETYPE + self.fields[name].help_text
                # A bound field copies its help text when first used (in clean, here).
                self[name].help_text = self.fields[name].help_text

    # --- field checks ---

    def clean_base_url(self) -> str:
        return validators.normalise_base_url(self.cleaned_data["base_url"])

    def clean_environment_id(self) -> str:
        value = self.cleaned_data["environment_id"].strip()
        if not value:
            raise ValidationError("Enter the Coalesce environment ID.")
        return value

    def clean_snowflake_username(self) -> str:
        value = self.cleaned_data["snowflake_username"]
        return validators.validate_login_name(value) if value else value

    def clean_snowflake_warehouse(self) -> str:
        value = self.cleaned_data["snowflake_warehouse"].strip()
        return validators.validate_snowflake_identifier(value, "warehouse") if value else value

    def clean_snowflake_role(self) -> str:
        value = self.cleaned_data["snowflake_role"].strip()
        return validators.validate_snowflake_identifier(value, "role") if value else value

    # --- the secrets, by auth type ---

    def clean(self):
        cleaned = super().clean()
        auth_type = cleaned.get("snowflake_auth_type")
        if not self._will_have("api_token"):
            self.add_error(
                "api_token",
                "Paste a Coalesce API token (in Coalesce: Deploy > Generate Access Token).",
            )
        if auth_type in (AuthType.BASIC, AuthType.KEYPAIR) and not cleaned.get(
            "snowflake_username"
        ):
            self.add_error("snowflake_username", f"{auth_type} authentication needs a username.")
        self._refuse_secrets_the_type_does_not_use(auth_type)
        if auth_type == AuthType.BASIC and not self._will_have("snowflake_password"):
            self.add_error("snowflake_password", "Basic authentication needs a password.")
        if auth_type == AuthType.KEYPAIR:
            self._clean_key_pair()
        self._clean_pat(auth_type)
        return cleaned

    def _clean_pat(self, auth_type: str | None) -> None:
        is_pat = self.cleaned_data.get("snowflake_password_is_pat")
        expires_on = self.cleaned_data.get("snowflake_pat_expires_on")
        if (is_pat or expires_on) and auth_type != AuthType.BASIC:
            self.add_error("snowflake_password_is_pat", "Only Basic authentication uses a "
                           "programmatic access token; untick this or choose Basic.")
        elif expires_on and not is_pat:
            self.add_error("snowflake_password_is_pat", "An expiry date is for a programmatic "
                           "access token: tick this box, or clear the date.")

    def _typed(self, name: str) -> str:
        return self.cleaned_data.get(name) or ""

    def _will_have(self, name: str) -> bool:
        """Whether the profile holds this secret once the form is saved."""
        if self._typed(name):
            return True
        if self.cleaned_data.get(f"clear_{name}"):
            return False
        return self.instance.pk is not None and self.instance.has_secret(name)

    def _refuse_secrets_the_type_does_not_use(self, auth_type: str | None) -> None:
        if auth_type is None:
            return
        used = EnvironmentProfile.SECRETS_BY_AUTH_TYPE[auth_type]
        for name in ("snowflake_password", "private_key", "private_key_passphrase"):
            if name not in used and self._typed(name):
                label = self.fields[name].label
                self.add_error(name, f"{auth_type} authentication does not use a {label.lower()}; "
                               "leave this empty or change the auth type.")

    # The typed key and passphrase are locals here: kept off Django's error pages.
    @sensitive_variables()
    def _clean_key_pair(self) -> None:
        typed_key = self._typed("private_key")
        passphrase = self._typed("private_key_passphrase")
        if typed_key:
            self._normalise(typed_key, passphrase)
        elif not self._will_have("private_key"):
            self.add_error("private_key", "KeyPair authentication needs a private key.")
        elif passphrase:
            # A new passphrase for the stored key: it must open that key.
            try:
                stored = self.instance.get_secret("private_key")
            except CredentialDecryptionError:
                self.add_error("private_key", "The stored private key cannot be decrypted with "
                               "the configured keys, so a new passphrase cannot be checked "
                               "against it. Paste the private key again with its passphrase.")
                return
            self._normalise(stored, passphrase)
        elif self.instance.private_key_encrypted and not self._will_have("private_key_passphrase"):
            self.add_error("private_key_passphrase", "The stored key is encrypted; it needs its "
                           "passphrase.")

    @sensitive_variables()
    def _normalise(self, text: str, passphrase: str) -> None:
        try:
            self.normalised_key = private_keys.normalise_private_key(text, passphrase or None)
        except private_keys.PrivateKeyError as exc:
            self.add_error(exc.field, str(exc))

    # --- saving ---

    def apply_secrets(self, profile: EnvironmentProfile, *, by: str) -> list[SecretChange]:
        """Write the typed secrets onto `profile` (not saved); return what changed."""
        changes = []
        for name in self.SECRET_FIELDS:
            had = profile.has_secret(name)
            if name == "private_key" and self._typed(name) and self.normalised_key is not None:
                profile.set_private_key(self.normalised_key, by=by)
            elif name != "private_key" and self._typed(name):
                profile.set_secret(name, self._typed(name), by=by)
            elif self.cleaned_data.get(f"clear_{name}") and had:
                profile.clear_secret(name)
                changes.append(SecretChange(name, "cleared"))
                continue
            else:
                continue
            changes.append(SecretChange(name, "replaced" if had else "stored"))
        key = self.normalised_key
        if key is not None and not key.encrypted and profile.has_secret("private_key_passphrase"):
            profile.clear_secret("private_key_passphrase")
            changes.append(SecretChange("private_key_passphrase", "cleared",
                                        "the key is not encrypted"))
        for name in profile.drop_secrets_unused_by_auth_type():
            changes.append(SecretChange(name, "cleared",
                                        f"not used by {profile.snowflake_auth_type}"))
        return changes

    def describe(self, change: SecretChange) -> str:
        """A change as the admin history shows it: the field's label, never its value."""
        text = f"{self.fields[change.name].label} {change.what}"
        return f"{text} ({change.reason})" if change.reason else text


# --- the run form ---


def selector_warnings(selector: str) -> list[str]:
    """Problems to confirm before sending: what Coalesce would silently match nothing for
    (`||` inside braces), and selectors the preview can't read (with the position)."""
    try:
        found = selectors.warnings(selector)
    except selectors.SelectorError as exc:
        return [f"The preview can't read this selector ({exc.message} at character "
                f"{exc.pos + 1}); Coalesce may read it differently."]
    return [w.message for w in found if w.code == "or-inside-braces"]


def _is_uuid(value: str | None) -> bool:
    try:
        uuid.UUID(value or "")
    except ValueError:
        return False
    return True


class ParameterRowsForm(forms.Form):
    """Parameters arrive as parallel lists param_name / param_value (rows the page can
    add and remove); clean() turns them into a dict of strings with unique names.
    `parameter_errors` maps a row's index (0-based) to its problem, shown beside it."""

    submit_token = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.parameter_errors: dict[int, str] = {}

    def clean(self):
        cleaned = super().clean()
        cleaned["parameters"] = self._clean_parameters()
        return cleaned

    def parameter_rows(self) -> list[tuple[str, str]]:
        """The rows as typed (blank rows kept so the page shows them again)."""
        names = self.data.getlist("param_name") if self.is_bound else []
        values = self.data.getlist("param_value") if self.is_bound else []
        count = max(len(names), len(values))
        return [(names[i] if i < len(names) else "", values[i] if i < len(values) else "")
                for i in range(count)]

    def _clean_parameters(self) -> dict[str, str]:
        parameters: dict[str, str] = {}
        for index, (name, value) in enumerate(self.parameter_rows()):
            name = name.strip()
            if not name and not value:
                continue  # an empty row left on the page
            if problem := parameter_problem(name, value):
                self.parameter_errors[index] = problem
            elif not name:
                self.parameter_errors[index] = "Give this parameter a name."
            elif name in parameters:
                self.parameter_errors[index] = (f"“{name}” is already set above; parameter "
                                                "names must be unique.")
            else:
                parameters[name] = value
        if len(parameters) > MAX_PARAMETERS:
            self.add_error(None, f"At most {MAX_PARAMETERS} parameters can be sent with a run "
                           f"({len(parameters)} are given).")
        return parameters

    def error_summary(self) -> list[tuple[str, str, str]]:
        """Every problem as (anchor id, label, message), in page order, for the summary
        that links to each field."""
        items = [("", "", str(e)) for e in self.non_field_errors()]
        for name, field in self.fields.items():
            for error in self.errors.get(name, []):
                items.append((self[name].id_for_label or f"id_{name}", field.label or name,
                              str(error)))
        items += [(f"param-row-{i}", f"Parameter row {i + 1}", message)
                  for i, message in sorted(self.parameter_errors.items())]
        return items

    def is_valid(self) -> bool:
        valid = super().is_valid()
        return valid and not self.parameter_errors


class RerunForm(ParameterRowsForm):
    """Rerun the failed nodes, optionally with changed parameters."""


PARALLELISM_RANGE = f"Parallelism must be a whole number from 1 to {MAX_PARALLELISM}."


class RunForm(ParameterRowsForm):
    """The analyst's request to start a refresh."""

    environment = forms.ModelChoiceField(
        label="Environment", queryset=EnvironmentProfile.objects.none(),
        empty_label="Choose an environment",
        error_messages={"required": "Choose the environment to refresh.",
                        "invalid_choice": "Choose one of the environments in the list."},
    )
    job_id = forms.CharField(
        label="Job ID", required=False, max_length=64,
        help_text="Optional: a Coalesce job's number, e.g. 3. Leave empty to pick nodes.",
        error_messages={"max_length": "A job ID is a number of at most 64 digits."},
    )
    include_selector = forms.CharField(
        label="Include nodes", required=False, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="A node selector, e.g. { location: STAGING name: STG_* } OR { name: DIM_X }",
    )
    exclude_selector = forms.CharField(
        label="Exclude nodes", required=False, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Nodes to leave out of the ones included, in the same syntax.",
    )
    parallelism = forms.IntegerField(
        label="Parallelism", min_value=1, max_value=MAX_PARALLELISM, initial=16,
        help_text=f"How many nodes run at once, 1 to {MAX_PARALLELISM}.",
        error_messages={"required": PARALLELISM_RANGE, "invalid": PARALLELISM_RANGE,
                        "min_value": PARALLELISM_RANGE, "max_value": PARALLELISM_RANGE},
    )
    force = forms.BooleanField(label="Force refresh even if the last deployment failed",
                               required=False)
    confirm_name = forms.CharField(
        label="Confirm environment name", required=False,
        help_text="Type the environment's name to confirm a forced refresh.",
    )
    refresh_all = forms.BooleanField(label="Refresh the entire environment", required=False)
    notify = forms.BooleanField(label="Notify me when this run ends", required=False,
                                help_text="An email to your address when it has an outcome.")
    # The preset the form was filled from, recorded on the run (never its force option:
    # presets have none).
    preset = forms.ModelChoiceField(queryset=Preset.objects.none(), required=False,
                                    widget=forms.HiddenInput)

    STALE_PAGE = ("This page was out of date, so nothing was started. Check the values and "
                  "press Start run again.")

    def __init__(self, data=None, *args, user, **kwargs):
        # A posted form without a usable one-time token (an old page, a tampered field)
        # gets a fresh one, so the page shown again can be sent, but it starts nothing now.
        self.stale_page = data is not None and not _is_uuid(data.get("submit_token"))
        if self.stale_page:
            data = data.copy()
            data["submit_token"] = str(uuid.uuid4())
        super().__init__(data, *args, **kwargs)
        self.fields["environment"].queryset = EnvironmentProfile.objects.runnable_by(user)
        self.fields["notify"].initial = NotificationPreference.objects.filter(
            user=user, notify_by_default=True).exists()
        # "⚠ Production (PAT expires in 9 days)": seen before choosing.
        self.fields["environment"].label_from_instance = EnvironmentProfile.label_with_pat_note
        self.fields["preset"].queryset = Preset.usable_by(user)
        if not user.has_perm("runs.force_run"):
            # Not shown at all; the view refuses a forged POST that carries it.
            del self.fields["force"], self.fields["confirm_name"]

    def clean_job_id(self) -> str:
        value = self.cleaned_data["job_id"].strip()
        # isascii: "²" and "١٢" are digits to str.isdigit, but not job IDs to Coalesce.
        if value and not (value.isascii() and value.isdigit()):
            raise ValidationError("A job ID is a number, as shown in Coalesce (e.g. 3).")
        return value

    def clean_include_selector(self) -> str:
        return clean_selector(self.cleaned_data["include_selector"])

    def clean_exclude_selector(self) -> str:
        return clean_selector(self.cleaned_data["exclude_selector"])

    def clean(self):
        cleaned = super().clean()
        if self.stale_page:
            self.add_error(None, self.STALE_PAGE)
        if cleaned.get("force"):
            profile = cleaned.get("environment")
            if profile is not None and cleaned.get("confirm_name", "").strip() != profile.name:
                self.add_error("confirm_name", f"Type the environment name “{profile.name}” "
                               "exactly to force a refresh.")
        targets = cleaned.get("job_id") or cleaned.get("include_selector") or cleaned.get(
            "exclude_selector")
        if not targets and not cleaned.get("refresh_all") and "job_id" in cleaned:
            self.add_error("refresh_all", "No job ID or node selector is given, so this run "
                           "refreshes every node: tick “Refresh the entire environment” to "
                           "confirm.")
        preset = cleaned.get("preset")
        if preset is not None and preset.profile_id != getattr(cleaned.get("environment"),
                                                               "pk", None):
            cleaned["preset"] = None  # the environment was changed after loading it
        return cleaned

    def run_request(self, **extra) -> RunRequest:
        """What the analyst asked for, once the form is valid (`extra`: the preview)."""
        cleaned = self.cleaned_data
        return RunRequest(
            profile=cleaned["environment"],
            job_id=cleaned["job_id"],
            include_selector=cleaned["include_selector"],
            exclude_selector=cleaned["exclude_selector"],
            parallelism=cleaned["parallelism"],
            force=cleaned.get("force", False),
            parameters=cleaned["parameters"],
            notify=cleaned.get("notify", False),
            preset=cleaned.get("preset"),
            **extra,
        )

    def warnings(self) -> list[tuple[str, str]]:
        """(field name, message) for each selector problem to confirm before sending."""
        found = []
        for name in ("include_selector", "exclude_selector"):
            text = self.data.get(name, "") if self.is_bound else ""
            found += [(name, message) for message in selector_warnings(text)]
        return found


class PresetForm(forms.Form):
    """Save the run form as a named preset (the run form's other fields come along)."""

    # Inside the run form: a `required` name would stop the browser from starting a run.
    use_required_attribute = False

    preset_name = forms.CharField(
        label="Preset name", max_length=100,
        error_messages={"required": "Give the preset a name to save it."})
    preset_shared = forms.BooleanField(
        label="Share with everyone who may run this environment", required=False)


# --- filters: the run history's and the audit log's ---


# The history's and the audit log's filter forms (one date range for both) live in
# runs.filter_forms; they are importable from here as well.
from runs.filter_forms import (  # noqa: E402, F401
    EARLIEST_DATE,
    LATEST_DATE,
    AuditFilterForm,
    DateRangeForm,
    PlainSelect,
    RunFilterForm,
    day_range,
)

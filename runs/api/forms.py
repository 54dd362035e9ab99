from __future__ import annotations

from datetime import timedelta

from django import forms
from django.utils import timezone

from runs.models import ApiToken, NotificationPreference

EXPIRY_CHOICES = [("30", "In 30 days"), ("90", "In 90 days"), ("365", "In a year"),
                  ("", "Never")]


class ApiTokenForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100,
                           help_text="What uses it, e.g. “nightly CI”. Shown in the run history.")
    scopes = forms.MultipleChoiceField(label="Scopes", choices=ApiToken.Scope.choices,
                                       widget=forms.CheckboxSelectMultiple,
                                       initial=[ApiToken.Scope.READ])
    expires_in = forms.ChoiceField(label="Expires", choices=EXPIRY_CHOICES, required=False,
                                   initial="90")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if ApiToken.objects.filter(user=self.user, name=name, revoked_at__isnull=True).exists():
            raise forms.ValidationError(f"You already have a token named “{name}”; choose "
                                        "another name or revoke that one first.")
        return name

    def expires_at(self):
        days = self.cleaned_data.get("expires_in")
        return timezone.now() + timedelta(days=int(days)) if days else None


class PreferenceForm(forms.ModelForm):
    class Meta:
        model = NotificationPreference
        fields = ["notify_by_default"]
        help_texts = {"notify_by_default": "Messages go to your email address."}

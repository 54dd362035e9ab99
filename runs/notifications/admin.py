"""The admin's side of notifications: destinations (URLs write-only), rules per profile,
and the delivery log (read-only). Imported by runs.admin, which Django autodiscovers."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib import admin

from runs.admin_base import ReadOnlyAdmin
from runs.notifications.models import EVENTS, Delivery, Destination, NotificationRule


class DestinationForm(forms.ModelForm):
    """URL and signing secret are typed, never shown: empty keeps what is stored."""

    url = forms.CharField(label="URL", required=False, max_length=2000,
                          widget=forms.PasswordInput(render_value=False,
                                                     attrs={"autocomplete": "off"}))
    signing_secret = forms.CharField(label="Signing secret", required=False, max_length=200,
                                     widget=forms.PasswordInput(render_value=False,
                                                                attrs={"autocomplete": "off"}))

    class Meta:
        model = Destination
        fields = ["name", "kind", "email_to"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in Destination.SECRETS:
            stored = self.instance.pk and self.instance.has_secret(name)
            self.fields[name].help_text = ("Stored; type a new value to replace it." if stored
                                           else "Not stored.")
        self.fields["url"].help_text += " Slack or webhook destinations: an https URL."
        self.fields["signing_secret"].help_text += (
            " Webhooks: the HMAC-SHA256 key receivers check the signature with.")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        if not url:
            return url
        parts = urlsplit(url)
        loopback = settings.WEBHOOK_ALLOW_LOOPBACK and parts.hostname in (
            "localhost", "127.0.0.1", "::1")
        if parts.scheme != "https" and not (loopback and parts.scheme == "http"):
            raise forms.ValidationError("Only https URLs are allowed.")
        try:
            ip = ipaddress.ip_address(parts.hostname or "")
        except ValueError:
            return url  # a host name: checked again when each message is sent
        if (ip.is_private or ip.is_loopback or ip.is_link_local) and not loopback:
            raise forms.ValidationError("Private, loopback and link-local addresses are "
                                        "refused.")
        return url

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        has_url = bool(cleaned.get("url")) or (self.instance.pk and self.instance.has_secret(
            "url"))
        if kind in (Destination.Kind.SLACK, Destination.Kind.WEBHOOK) and not has_url:
            self.add_error("url", "This kind of destination needs a URL.")
        if kind == Destination.Kind.EMAIL and not cleaned.get("email_to", "").strip():
            self.add_error("email_to", "An email destination needs at least one address.")
        return cleaned

    def save(self, commit=True):
        destination = super().save(commit=False)
        for name in Destination.SECRETS:
            if self.cleaned_data.get(name):
                destination.set_secret(name, self.cleaned_data[name])
        if commit:
            destination.save()
        return destination


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    form = DestinationForm
    list_display = ["name", "kind", "email_to", "created_at"]


class RuleForm(forms.ModelForm):
    events = forms.MultipleChoiceField(choices=EVENTS, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = NotificationRule
        fields = ["profile", "destination", "events"]


@admin.register(NotificationRule)
class NotificationRuleAdmin(admin.ModelAdmin):
    form = RuleForm
    list_display = ["profile", "destination", "events"]
    list_filter = ["profile"]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    """Every message: where, which event, how it went. Evidence: nobody edits it."""

    list_display = ["created_at", "run", "event", "recipient", "status", "attempts",
                    "next_attempt_at", "last_error"]
    list_filter = ["status", "event"]
    list_select_related = ["run", "destination"]
    readonly_fields = ["run", "event", "target", "destination", "email", "status", "attempts",
                       "created_at", "next_attempt_at", "sent_at", "last_error"]
    exclude = ["claimed_until"]

"""The filter forms of the history and the audit log, read from the query string, with one
date range for both (index-friendly: ranges on the timestamp column, never date casts)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import cache

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.forms.utils import flatatt
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe

from runs.history import Cursor
from runs.models import AuditEntry, EnvironmentProfile, Outcome, Run

# Dates outside this span are typos, and the far ends would overflow once converted to UTC.
EARLIEST_DATE, LATEST_DATE = date(1970, 1, 1), date(2999, 12, 31)


def _start_of(day: date) -> datetime:
    """Midnight at the start of `day` in the current time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


def day_range(field: str, first: date | None, last: date | None) -> Q:
    """Rows whose timestamp `field` falls on the days `first` to `last`, both included, in
    the current time zone; None leaves that end open.

    A range on the column itself (field >= first's midnight, < the midnight after last),
    so an index on the column serves it, where `field__date` would cast every row.
    """
    condition = Q()
    if first:
        condition &= Q(**{f"{field}__gte": _start_of(first)})
    if last:
        condition &= Q(**{f"{field}__lt": _start_of(last + timedelta(days=1))})
    return condition


class DateRangeForm(forms.Form):
    """A From and To date (either may be empty), checked to be plausible and in order.
    Subclasses narrow a queryset with `date_range(field)`."""

    date_from = forms.DateField(label="From", required=False,
                                widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False,
                              widget=forms.DateInput(attrs={"type": "date"}))

    def _clean_date(self, name: str) -> date | None:
        value = self.cleaned_data[name]
        if value and not EARLIEST_DATE <= value <= LATEST_DATE:
            raise ValidationError(f"Enter a date between {EARLIEST_DATE.year} and "
                                  f"{LATEST_DATE.year}.", code="out_of_range")
        return value

    def clean_date_from(self) -> date | None:
        return self._clean_date("date_from")

    def clean_date_to(self) -> date | None:
        return self._clean_date("date_to")

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def date_range(self, field: str) -> Q:
        """The chosen days as a condition on the timestamp `field` (see day_range)."""
        data = self.cleaned_data
        return day_range(field, data.get("date_from"), data.get("date_to"))


class PlainSelect(forms.Select):
    """A <select> whose options are formatted in Python, not through a template.

    Django renders each option through the template engine; for the couple of hundred
    people in the "Started by" filter that took longer than the rest of the page together.
    """

    def render(self, name, value, attrs=None, renderer=None):
        selected = set(self.format_value(value))

        def options(choices) -> str:
            html = []
            for key, label in choices:
                key = "" if key is None else str(key)
                mark = " selected" if key in selected else ""
                html.append(f'<option value="{escape(key)}"{mark}>{escape(label)}</option>')
            return "".join(html)

        parts = []
        for key, label in self.choices:
            if isinstance(label, list | tuple):
                parts.append(f'<optgroup label="{escape(key)}">{options(label)}</optgroup>')
            else:
                parts.append(options([(key, label)]))
        attrs = flatatt(self.build_attrs(self.attrs, {"name": name, **(attrs or {})}))
        return mark_safe(f"<select{attrs}>{''.join(parts)}</select>")  # every part is escaped


OUTCOME_CHOICES = [("", "Any outcome"), *Outcome.choices]


# What EnvironmentProfile.label_with_pat_note reads.
PAT_LABEL_FIELDS = ("pk", "name", "snowflake_auth_type", "snowflake_password_is_pat",
                    "snowflake_pat_expires_on")


class RunFilterForm(DateRangeForm):
    """The history's query string. The environments offered are `profiles`, the people
    those who started one of `runs`: the viewer never sees a choice they may not use."""

    # Choices are set per viewer in __init__; values are ids.
    environment = forms.TypedChoiceField(coerce=int, empty_value=None, required=False,
                                         widget=PlainSelect)
    user = forms.TypedChoiceField(coerce=int, empty_value=None, required=False,
                                  label="Started by", widget=PlainSelect)
    outcome = forms.ChoiceField(choices=OUTCOME_CHOICES, required=False, widget=PlainSelect)
    force = forms.BooleanField(required=False, label="Forced only")
    q = forms.CharField(required=False, max_length=200, label="Search",
                        widget=forms.TextInput(attrs={"type": "search"}),
                        help_text="A run's number, a node, a selector or words of an error.")
    cursor = forms.CharField(required=False, widget=forms.HiddenInput)

    field_order = ["environment", "user", "outcome", "date_from", "date_to", "force", "q",
                   "cursor"]

    def __init__(self, *args, runs: QuerySet[Run], profiles: QuerySet[EnvironmentProfile],
                 **kwargs):
        super().__init__(*args, **kwargs)
        # Each list is read once, and only if the form is rendered or that filter is set
        # (an htmx page of rows needs neither). Plain queries: a ModelChoiceField would
        # build model instances and, on PostgreSQL, open a server-side cursor for each.
        environments = profiles.order_by("name").only(*PAT_LABEL_FIELDS)
        self.fields["environment"].choices = cache(lambda: [
            ("", "All environments"),
            *((p.pk, p.label_with_pat_note()) for p in environments)])
        # An EXISTS probe per person on an index that starts with created_by, where a
        # DISTINCT would read every run. (For analysts the probe also narrows by profile:
        # the index run_user_profile_newest serves that.)
        user_model = get_user_model()
        name = user_model.USERNAME_FIELD
        people = user_model.objects.filter(Exists(runs.filter(created_by=OuterRef("pk"))))
        self.fields["user"].choices = cache(
            lambda: [("", "Anyone"), *people.order_by(name).values_list("pk", name)])

    def clean_cursor(self) -> Cursor | None:
        token = self.cleaned_data["cursor"]
        if not token:
            return None
        try:
            return Cursor.decode(token)
        except ValueError:
            raise ValidationError("This page link is damaged. Start again from the newest "
                                  "runs.", code="bad_cursor") from None


class AuditFilterForm(DateRangeForm):
    """The audit log's filters, read from the query string. `before` is the keyset
    cursor: the seq of the last entry of the previous page."""

    action = forms.ChoiceField(label="Action", required=False,
                               choices=[("", "Any action"), *AuditEntry.Action.choices])
    actor = forms.CharField(label="Who", required=False, max_length=150)
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    field_order = ["action", "actor", "date_from", "date_to", "before"]

    def filter(self, entries):
        data = self.cleaned_data
        if data.get("action"):
            entries = entries.filter(action=data["action"])
        if data.get("actor"):
            entries = entries.filter(actor=data["actor"].strip())
        return entries.filter(self.date_range("at"))

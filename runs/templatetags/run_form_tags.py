"""Template helpers of the run form: {% load run_form_tags %}."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    """mapping[key], or "" when absent (a parameter row's error by row index)."""
    try:
        return mapping.get(key, "")
    except AttributeError:
        return ""

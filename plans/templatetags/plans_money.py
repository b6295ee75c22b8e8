"""Money as people read it: cents shown as dollars and cents."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def cents(amount: int) -> str:
    dollars, remainder = divmod(int(amount), 100)
    return f"{dollars:,}.{remainder:02d}"

"""Which numeric form fields the report shows as ratings or NPS, so a theme's pain shows next to its size.

The rule (README, *Report*): a form field (never `custom_data`) is a rating when its label names a rating,
score, stars, satisfaction or NPS, and every value it holds in the channel is a whole number from 0 to 10.
Order numbers, amounts, ids and counts fail either test, so they are never averaged. A rating whose label
asks how likely someone is to recommend (or says NPS) and whose values lie in 0–10 is an NPS question:
the report shows its Net Promoter Score (% of 9–10 minus % of 0–6) instead of a mean. Named fields
(`--rating-field`, `USERSNAP_CHANNELS_REPORT_RATING_FIELDS`) replace the name test; their values must still
be whole numbers from 0 to 10 for an NPS, any finite numbers for a mean.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from usersnap_channels.warehouse.report import NumericField

RATING_NAME = re.compile(r"\b(rate|rating|ratings|rated|score|stars?|satisf\w*|csat|nps|recommend\w*)\b", re.I)
NPS_NAME = re.compile(r"\bnps\b|\brecommend\w*\b|\bhow likely\b", re.I)
#: The largest value a rating may hold (0–10 covers 1–5 stars, 1–7 and 0–10 scales).
RATING_MAX = 10


@dataclass(frozen=True)
class RatingField:
    """A field the report aggregates: `nps` (Net Promoter Score) or `rating` (mean on a 1–`scale` scale)."""

    name: str
    kind: str
    scale: int


def pick_rating_fields(fields: Sequence[NumericField], named: Sequence[str] = ()) -> list[RatingField]:
    """The rating and NPS fields among a channel's numeric form fields (see the module's rule)."""
    wanted = {n.strip() for n in named if n.strip()}
    picked: list[RatingField] = []
    for field in fields:
        bounded = field.all_integers and field.minimum >= 0 and field.maximum <= RATING_MAX
        if wanted:
            if field.name not in wanted:
                continue
        elif not (RATING_NAME.search(field.name) and bounded):
            continue
        if bounded and NPS_NAME.search(field.name):
            picked.append(RatingField(field.name, "nps", 10))
        else:
            picked.append(RatingField(field.name, "rating", _scale(field.maximum)))
    return picked


def _scale(maximum: float) -> int:
    """The scale a mean is shown on: 5 (stars), 7, 10, or the largest value seen for a named field."""
    for scale in (5, 7, 10):
        if maximum <= scale:
            return scale
    return int(maximum) if maximum == int(maximum) else int(maximum) + 1


def named_fields(option: Sequence[str], setting: str) -> list[str]:
    """The field names given on the command line, else those of the setting (comma-separated)."""
    return [n for n in option if n.strip()] or [n.strip() for n in setting.split(",") if n.strip()]

"""Deterministic, realistic Usersnap data for the local dev server.

Everything is derived from string-seeded `random.Random` instances (seed + workspace + project), so
the same seed and `now` always produce the same workspaces, keys and feedback items, and adding a
project never perturbs the items of another. Items deliberately exercise every field variant the
mapping rules in the product spec talk about: blank and unlabelled inputs, duplicate labels, yes/no,
rating, NPS and choice inputs, nested and lossless-number `custom_data`, screenshots with empty
comments, items without any text, and timestamps on exact day boundaries.
"""

from __future__ import annotations

import copy
import math
import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY_US = 86_400_000_000

STATUS_TYPES = ("open", "in_progress", "done", "closed")
PRIORITIES = ("low", "medium", "high", "urgent")
MALFORMED_KINDS = ("no_feedback_id", "bad_created_at", "wrong_types")


# --------------------------------------------------------------------------------------------------
# time helpers


def to_us(dt: datetime) -> int:
    """Microseconds since the epoch: an exact integer sort key (floats would lose microseconds)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    """Inverse of `to_us`."""
    return EPOCH + timedelta(microseconds=us)


def iso(dt: datetime) -> str:
    """Usersnap's timestamp form: ISO-8601, always six fractional digits, `Z`."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(value: str) -> datetime:
    """Parse an ISO timestamp (with `Z`, an offset, or naive meaning UTC); raises ValueError."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("timestamp must be a non-empty string")
    dt = datetime.fromisoformat(value.strip())
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def utc(dt: datetime) -> datetime:
    """Make a datetime timezone-aware UTC (naive values are taken as UTC)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def new_uuid(rng: random.Random) -> str:
    """A uuid4-shaped string drawn from `rng`, so ids are reproducible from the seed."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def slug(name: str) -> str:
    """Lower-case identifier from a display name (`Web App` → `web-app`)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "x"


def env_prefix(workspace: str) -> str:
    """Environment-variable prefix of a workspace (`Acme` → `ACME`, `Initech Corp` → `INITECH_CORP`)."""
    return re.sub(r"[^A-Z0-9]+", "_", workspace.upper()).strip("_") or "WORKSPACE"


# --------------------------------------------------------------------------------------------------
# keys

_SECRET_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def make_keypair(seed: int, workspace: str, generation: int) -> tuple[str, str]:
    """(jwt_id, jwt_secret) for a workspace; each rotation bumps `generation` for a fresh pair."""
    rng = random.Random(f"{seed}:key:{workspace}:{generation}")
    jwt_id = f"{slug(workspace)}-{rng.getrandbits(48):012x}"
    secret = "".join(rng.choice(_SECRET_ALPHABET) for _ in range(48))
    return jwt_id, secret


# --------------------------------------------------------------------------------------------------
# workspace and project objects


@dataclass
class WorkspaceContext:
    """Workspace-wide ids the items and projects refer to (company, members, labels)."""

    name: str
    company_id: str
    space_ids: list[str]
    member_ids: list[str]
    labels: list[dict[str, Any]]
    rng: random.Random = field(repr=False)


_LABELS = (
    ("Bug", "#e53935"),
    ("Feature request", "#1e88e5"),
    ("UX", "#8e24aa"),
    ("Performance", "#fb8c00"),
    ("Billing", "#43a047"),
    ("Mobile", "#00897b"),
    ("Praise", "#fdd835"),
    ("Urgent customer", "#d81b60"),
    ("Needs triage", "#757575"),
)


def make_workspace_context(seed: int, name: str) -> WorkspaceContext:
    """Company id, spaces, members and the label catalogue of one workspace."""
    rng = random.Random(f"{seed}:workspace:{name}")
    labels = [
        {
            "company_label_id": new_uuid(rng),
            "identifier": slug(label),
            "name": label,
            "color": color,
        }
        for label, color in _LABELS
    ]
    return WorkspaceContext(
        name=name,
        company_id=new_uuid(rng),
        space_ids=[new_uuid(rng) for _ in range(2)],
        member_ids=[new_uuid(rng) for _ in range(5)],
        labels=labels,
        rng=rng,
    )


def make_project(ctx: WorkspaceContext, name: str, *, earliest: datetime, n_items: int = 0) -> dict[str, Any]:
    """A project object exactly as `GET /projects` serves it (counts are kept current by the store)."""
    rng = random.Random(f"{ctx.rng.random()}:project:{ctx.name}:{name}")
    created = utc(earliest) - timedelta(days=rng.randint(20, 400), seconds=rng.randint(0, 86_399))
    created = created.replace(microsecond=rng.randint(0, 999_999))
    updated = created + timedelta(days=rng.randint(0, 15), seconds=rng.randint(0, 86_399))
    return {
        "project_id": new_uuid(rng),
        "api_key": new_uuid(rng),
        "company_id": ctx.company_id,
        "space_id": rng.choice(ctx.space_ids),
        "created_at": iso(created),
        "updated_at": iso(updated),
        "archived_at": None,
        "owner_id": rng.choice(ctx.member_ids),
        "default_assignee_id": rng.choice([*ctx.member_ids, None]),
        "name": name,
        "is_live": True,
        "feedback_count": n_items,
        "open_feedback_count": 0,
    }


# --------------------------------------------------------------------------------------------------
# text generation: topic clusters with distinct vocabulary, so theme detection has something to find


_FILL: dict[str, tuple[str, ...]] = {
    "sso": ("Google", "Microsoft", "Okta", "SAML SSO", "GitHub"),
    "when": ("yesterday", "the last update", "this morning", "Monday", "the weekend", "two days ago"),
    "freq": ("every time", "about half the time", "only on Safari", "after a few minutes", "randomly"),
    "page": ("dashboard", "reports page", "project list", "settings page", "inbox", "analytics view"),
    "secs": ("5", "8", "10", "15", "20", "30"),
    "n": ("12", "40", "150", "500", "2,000", "10k"),
    "things": ("projects", "reports", "tickets", "contacts", "invoices", "comments", "tasks"),
    "device": ("my iPhone 13", "a Pixel 7", "an iPad", "Android 14", "my Galaxy S22", "iOS 17"),
    "fmt": ("CSV", "Excel", "PDF", "JSON"),
    "error": ("a 500 error", "'Something went wrong'", "a blank page", "a timeout", "error code E-42"),
    "column": ("date", "owner", "status", "email", "total"),
    "element": ("sidebar", "date picker", "save button", "search field", "menu", "tooltip"),
    "element2": ("header", "footer", "chat widget", "cookie banner"),
    "plan": ("Pro", "Business", "Team", "Enterprise"),
    "pct": ("20", "30", "50", "15"),
    "feature": (
        "dark mode",
        "the new editor",
        "bulk editing",
        "the calendar view",
        "keyboard shortcuts",
        "the mobile app",
        "offline mode",
        "custom fields",
    ),
    "audience": ("freelancers", "nonprofits", "students", "small teams", "startups"),
    "month": ("January", "March", "May", "August", "October", "December"),
    "card": ("Visa", "Mastercard", "Amex", "PayPal", "SEPA debit"),
    "action": ("open a photo", "rotate the screen", "upload a file", "switch accounts", "tap share"),
    "praise_tail": (
        "saves me so much time.",
        "exactly what we needed.",
        "keep it up!",
        "the team loves it.",
        "much better than before.",
    ),
    "adj": ("super helpful", "really fast", "amazing", "very patient"),
    "name": ("Anna", "Marco", "Priya", "Tom", "Lena", "Jonas"),
    "category": ("feedback", "project management", "reporting", "invoicing"),
    "integration": ("Slack", "Jira", "Salesforce", "HubSpot", "Zapier", "Microsoft Teams", "Linear"),
    "event": ("a task is closed", "an invoice is paid", "a new user signs up", "a report is ready"),
    "field": ("email", "tag", "date", "owner", "customer name"),
}

_TOPICS: dict[str, dict[str, Any]] = {
    "login": {
        "kind": "bug",
        "labels": ("Bug", "Urgent customer"),
        "t": (
            "I can't log in with {sso} since {when}.",
            "The password reset email never arrives, I tried {freq}.",
            "Two-factor codes are rejected {freq}.",
            "After logging in I'm sent back to the login page {freq}.",
            "Login with {sso} shows {error}.",
        ),
    },
    "performance": {
        "kind": "bug",
        "labels": ("Performance",),
        "t": (
            "The {page} takes {secs} seconds to load.",
            "The {page} is very slow when I have {n} {things}.",
            "Scrolling the {page} lags badly on {device}.",
            "Search results take forever, {secs} seconds or more.",
            "Everything got slow since {when}, the {page} takes {secs} seconds.",
        ),
    },
    "export": {
        "kind": "bug",
        "labels": ("Bug",),
        "t": (
            "Exporting to {fmt} fails with {error}.",
            "The {fmt} export is missing the {column} column.",
            "Please let me export {things} to {fmt}.",
            "{fmt} export of {n} {things} never finishes.",
        ),
    },
    "ui": {
        "kind": "idea",
        "labels": ("UX",),
        "t": (
            "Please add a dark mode, the {page} is too bright at night.",
            "The {element} is hard to read on {device}.",
            "The {element} overlaps the {element2} on small screens.",
            "The font in the {page} is too small.",
            "I can never find the {element}, please make it more visible.",
        ),
    },
    "pricing": {
        "kind": "pricing",
        "labels": ("Billing",),
        "t": (
            "The {plan} plan is too expensive for a team of {n}.",
            "Why did the price of the {plan} plan go up by {pct}%?",
            "I would pay for {feature} but not for the whole {plan} plan.",
            "Please offer a cheaper plan for {audience}.",
            "Pricing per seat doesn't work for us, we have {n} occasional users.",
        ),
    },
    "billing": {
        "kind": "bug",
        "labels": ("Billing",),
        "t": (
            "My invoice for {month} shows the wrong VAT number.",
            "I was charged twice for {month}.",
            "I can't download the invoice PDF for {month}.",
            "Please add our company address to the invoices.",
            "The {plan} plan renewal charged my old {card} card.",
        ),
    },
    "checkout": {
        "kind": "bug",
        "labels": ("Bug", "Urgent customer"),
        "t": (
            "Payment with {card} fails at checkout with {error}.",
            "The checkout button does nothing after I enter the coupon code.",
            "Apple Pay doesn't show up on {device}.",
            "The order total changes after I pick {card} as payment method.",
        ),
    },
    "mobile": {
        "kind": "bug",
        "labels": ("Mobile", "Bug"),
        "t": (
            "The app crashes when I {action} on {device}.",
            "After the update the app closes on startup on {device}.",
            "Push notifications stopped working on {device} since {when}.",
            "The app drains my battery on {device}.",
        ),
    },
    "praise": {
        "kind": "praise",
        "labels": ("Praise",),
        "t": (
            "Love {feature}! It {praise_tail}",
            "Great job on {feature}, {praise_tail}",
            "Your support team was {adj}, thanks {name}!",
            "This is by far the best {category} tool we've used.",
            "Thank you for {feature}, {praise_tail}",
        ),
    },
    "integration": {
        "kind": "idea",
        "labels": ("Feature request",),
        "t": (
            "It would be great to have a {integration} integration.",
            "Please sync {things} with {integration} automatically.",
            "A webhook when {event} would save us hours.",
            "We need {integration} notifications when {event}.",
        ),
    },
    "notifications": {
        "kind": "idea",
        "labels": ("Feature request", "UX"),
        "t": (
            "I get too many email notifications about {things}.",
            "Please let me mute notifications for {things}.",
            "A daily digest instead of single emails about {things} would be nice.",
        ),
    },
    "search": {
        "kind": "idea",
        "labels": ("Feature request",),
        "t": (
            "Search doesn't find {things} by {field}.",
            "Please add a filter by {field} to the {page}.",
            "Saved filters on the {page} disappear after a reload.",
        ),
    },
}

_DETAILS = (
    "This is blocking our whole team.",
    "Not urgent, just wanted to let you know.",
    "It started after the last release.",
    "Steps: open the {page}, click the {element}, wait.",
    "We have {n} {things}, in case that matters.",
    "Tried it in another browser too, same result.",
    "Thanks for looking into it!",
    "Happens on {device} as well.",
)

_FOREIGN = (
    "Die Seite lädt sehr langsam 😕",
    "Impossible de télécharger la facture en PDF.",
    "¡Me encanta la nueva versión! 🎉",
    "Das Exportieren nach Excel funktioniert nicht.",
    "Très bon outil, merci à l'équipe 👍",
    "Prijs is te hoog voor ons kleine team.",
)

_SCREENSHOT_COMMENTS = (
    "This button is broken",
    "Wrong total here",
    "Typo",
    "Should be aligned with the header",
    "Why is this empty?",
    "Overlaps on my screen",
    "Spinner never stops",
    "Love this part",
)

_PROJECT_TOPICS: dict[str, tuple[str, ...]] = {
    "web app": ("performance", "export", "ui", "login", "search", "notifications", "praise", "integration"),
    "mobile app": ("mobile", "login", "ui", "notifications", "praise", "performance"),
    "checkout": ("checkout", "pricing", "billing", "ui", "praise", "performance"),
    "customer portal": ("login", "ui", "search", "export", "praise", "integration", "performance"),
    "billing": ("billing", "pricing", "checkout", "export", "praise"),
}

_BROWSERS = (
    ("Chrome", "126.0.0.0", "Windows 10", "desktop", 1920, 1080),
    ("Chrome", "125.0.6422.142", "Mac OS X 10.15.7", "desktop", 1440, 900),
    ("Firefox", "127.0", "Ubuntu", "desktop", 2560, 1440),
    ("Safari", "17.5", "Mac OS X 14.5", "desktop", 1512, 982),
    ("Edge", "126.0.2592.68", "Windows 11", "desktop", 1366, 768),
    ("Mobile Safari", "17.5", "iOS 17.5", "mobile", 390, 844),
    ("Chrome Mobile", "126.0.6478.71", "Android 14", "mobile", 412, 915),
    ("Samsung Internet", "25.0", "Android 13", "tablet", 800, 1280),
)

_PLACES = (
    ("Vienna", "Austria"),
    ("Berlin", "Germany"),
    ("London", "United Kingdom"),
    ("New York", "United States"),
    ("San Francisco", "United States"),
    ("Paris", "France"),
    ("São Paulo", "Brazil"),
    ("Bengaluru", "India"),
    (None, "Netherlands"),
    (None, None),
)

_PATHS = (
    "/dashboard",
    "/reports?range=30d",
    "/settings/billing",
    "/projects/42",
    "/inbox",
    "/checkout/pay",
    "/",
    "/account/invoices",
    "/search?q=export",
)

_FIRST = ("anna", "marco", "priya", "tom", "lena", "jonas", "sofia", "li", "noah", "emma", "ali", "julia")
_LAST = ("schmidt", "rossi", "patel", "nguyen", "miller", "garcia", "kowalski", "berg", "okafor")
_DOMAINS = ("example.com", "mail.example.org", "acme-corp.example", "globex.example", "company.example.net")

_CHOICES = ("Pricing", "Performance", "Bug", "Feature request", "Other")

_CUSTOM_DATA: tuple[Any, ...] = (
    None,
    {},
    {"plan": "pro", "mrr": Decimal("49.9")},
    {"user": {"id": 7, "role": "admin"}, "tags": ["a", "b"]},
    {"account_id": 12345678901234567, "beta": True, "ratio": Decimal("0.1000000000000000055511"), "referrer": None},
    {"plan": "enterprise", "seats": 250, "mrr": Decimal("12999.990000000000001"), "trial": False},
    {"locale": "de-DE", "user": {"id": 90210, "company": {"name": "Globex GmbH", "size": 120}}},
    {"plan": "free", "signup_source": "google-ads", "pi": Decimal("3.14159265358979323846264338327950288")},
    {"plan": "team", "mrr": Decimal("99.00"), "features": {"sso": True, "audit_log": False}, "note": None},
    {"order_id": 98765432109876543210, "cart": [{"sku": "A-1", "qty": 2}], "discount": Decimal("0.15")},
    ["vip", "beta"],
)


def _fill(template: str, rng: random.Random) -> str:
    """Replace each `{slot}` with a random filler (fresh per slot)."""
    return re.sub(r"\{(\w+)\}", lambda m: rng.choice(_FILL[m.group(1)]), template)


def _sentence(topic: str, rng: random.Random) -> str:
    text = _fill(rng.choice(_TOPICS[topic]["t"]), rng)
    r = rng.random()
    if r < 0.35:
        text = f"{text} {_fill(rng.choice(_DETAILS), rng)}"
    elif r < 0.38:
        text = rng.choice(_FOREIGN)
    elif r < 0.42:
        text = text.lower().rstrip(".")
    return text


# --------------------------------------------------------------------------------------------------
# items


def _input(
    order: int,
    label: str | None,
    *,
    sparse: bool,
    text: str | None = None,
    boolean: bool | None = None,
    value: str | None = None,
) -> dict[str, Any]:
    """One `ordered_inputs` entry; `sparse` drops the keys that do not apply (Usersnap does both)."""
    full = {"order": order, "label": label, "boolean_value": boolean, "text_value": text, "value": value}
    if not sparse:
        return full
    return {k: v for k, v in full.items() if v is not None or k in ("order", "label")}


class ItemFactory:
    """Makes the feedback items of one project; owns the project's RNG stream and numbering."""

    def __init__(self, seed: int, ctx: WorkspaceContext, project: dict[str, Any]) -> None:
        self.seed = seed
        self.ctx = ctx
        self.project = project
        self.rng = random.Random(f"{seed}:items:{project['project_id']}")
        key = project["name"].lower()
        self.topics = _PROJECT_TOPICS.get(key) or tuple(_TOPICS)
        self.host = f"{slug(project['name'])}.{slug(ctx.name)}.example"
        self.labels_by_name = {lab["name"]: lab for lab in ctx.labels}

    def for_item(self, key: str) -> ItemFactory:
        """A copy with its own RNG for one item added after seeding.

        The seeding's number of draws follows the clock (how many days and hours it covers), so an item
        drawn from the shared stream afterwards would change with the hour; its own stream does not.
        """
        clone = copy.copy(self)
        clone.rng = random.Random(f"{self.seed}:items:{self.project['project_id']}:{key}")
        return clone

    # -- pieces ------------------------------------------------------------------------------------

    def _client(self) -> dict[str, Any]:
        rng = self.rng
        name, version, os_name, client_type, w, h = rng.choice(_BROWSERS)
        city, country = rng.choice(_PLACES)
        return {
            "url": f"https://{self.host}{rng.choice(_PATHS)}",
            "client_type": client_type,
            "city_name": city,
            "country_name": country,
            "screen_width": w,
            "screen_height": h,
            "browser_full_name": f"{name} {version}",
            "browser_os": os_name,
            "browser_name": name,
            "browser_version": version,
        }

    def _inputs(self, topic: str) -> list[dict[str, Any]]:
        """The form answers: a layout picked per item, with blank, unlabelled and duplicate inputs."""
        rng = self.rng
        sparse = rng.random() < 0.3
        kind = _TOPICS[topic]["kind"]
        text = _sentence(topic, rng)
        layout = rng.choices(
            ("feedback", "bug", "rating", "nps", "choice", "duplicate", "empty", "blank", "order_no"),
            weights=(30, 14, 14, 12, 10, 4, 5, 3, 2),
        )[0]
        positive = kind == "praise"
        if layout == "feedback":
            label = rng.choice(("Your feedback", "Feedback", "What's on your mind?", None))
            inputs = [_input(1, label, sparse=sparse, text=text)]
            if rng.random() < 0.4:
                inputs.append(_input(2, "May we contact you?", sparse=sparse, boolean=rng.random() < 0.6))
        elif layout == "bug":
            steps = rng.choice(
                (
                    "",
                    "   ",
                    "\n",
                    "1. Open the page\n2. Click save\n3. Nothing happens",
                    _fill("Open the {page} and click the {element}.", rng),
                )
            )
            inputs = [
                _input(1, "What went wrong?", sparse=sparse, text=text),
                _input(2, "Steps to reproduce", sparse=sparse, text=steps),
                _input(3, "Does this block your work?", sparse=sparse, boolean=rng.random() < 0.5),
            ]
        elif layout == "rating":
            score = rng.randint(4, 5) if positive else rng.randint(1, 4)
            inputs = [
                _input(1, "How would you rate this page?", sparse=sparse, value=str(score)),
                _input(2, "Tell us more", sparse=sparse, text=text if rng.random() < 0.85 else ""),
            ]
        elif layout == "nps":
            score = rng.randint(9, 10) if positive else rng.randint(0, 8)
            inputs = [
                _input(
                    1, "How likely are you to recommend us to a friend or colleague?", sparse=sparse, value=str(score)
                ),
                _input(2, "What's the main reason for your score?", sparse=sparse, text=text),
            ]
        elif layout == "choice":
            choice = "Pricing" if kind == "pricing" else rng.choice(_CHOICES)
            inputs = [
                _input(1, "What is your feedback about?", sparse=sparse, value=choice),
                _input(2, "Details", sparse=sparse, text=text),
            ]
        elif layout == "duplicate":
            inputs = [
                _input(1, "Comment", sparse=sparse, text=text),
                _input(2, "Comment", sparse=sparse, text=_sentence(rng.choice(self.topics), rng)),
            ]
        elif layout == "order_no":
            inputs = [
                _input(1, "Order number", sparse=sparse, value=str(rng.randint(10**16, 10**17 - 1))),
                _input(2, "Amount", sparse=sparse, value=f"{rng.randint(1, 999)}.{rng.randint(0, 99):02d}"),
                _input(3, None, sparse=sparse, text=text),
            ]
        elif layout == "blank":
            inputs = [_input(1, "Your feedback", sparse=sparse, text=rng.choice(("", "  ", "\t\n")))]
        else:  # empty: screenshot-only feedback
            inputs = []
        if len(inputs) > 1 and rng.random() < 0.05:
            rng.shuffle(inputs)  # the list is not always in `order`; consumers must sort
        return inputs

    def _screenshot(self, with_text: bool) -> dict[str, Any] | None:
        rng = self.rng
        if rng.random() < 0.3:
            return None
        comments = []
        for i in range(rng.choice((0, 0, 1, 1, 2, 3))):
            comment = rng.choice(_SCREENSHOT_COMMENTS) if with_text and rng.random() < 0.8 else ""
            comments.append({"label": str(i + 1), "comment": comment})
        return {
            "annotated_image_url": f"https://usersnap-uploads.example/{self.project['project_id']}/{new_uuid(rng)}.png",
            "comments": comments,
        }

    def _custom_data(self) -> Any:
        rng = self.rng
        # Very rarely not an object at all (the spec says: no custom fields then).
        value = copy.deepcopy(_CUSTOM_DATA[-1] if rng.random() < 0.003 else rng.choice(_CUSTOM_DATA[:-1]))
        if isinstance(value, dict) and "user" in value and isinstance(value["user"], dict) and rng.random() < 0.5:
            value["user"]["id"] = rng.randint(1, 10**6)
        return value

    def _labels(self, topic: str) -> list[dict[str, Any]]:
        rng = self.rng
        n = rng.choices((0, 1, 2, 3), weights=(45, 35, 15, 5))[0]
        if n == 0:
            return []
        names = list(_TOPICS[topic]["labels"])
        picked: list[dict[str, Any]] = []
        for name in names[:n]:
            picked.append(dict(self.labels_by_name[name]))
        while len(picked) < n:
            lab = rng.choice(self.ctx.labels)
            if all(p["company_label_id"] != lab["company_label_id"] for p in picked):
                picked.append(dict(lab))
        return picked

    def _email(self) -> str | None:
        rng = self.rng
        if rng.random() < 0.25:
            return None
        return (
            f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{rng.choice(('', '', str(rng.randint(1, 99))))}"
            f"@{rng.choice(_DOMAINS)}"
        )

    # -- items -------------------------------------------------------------------------------------

    def make(self, created_at: datetime, number: int, now: datetime) -> dict[str, Any]:
        """One valid item created at `created_at`; `now` bounds `updated_at` and shapes the status."""
        rng = self.rng
        created_at = utc(created_at)
        feedback_id = new_uuid(rng)
        topic = rng.choice(self.topics)
        inputs = self._inputs(topic)
        with_text = rng.random() < 0.97
        age_days = max(0.0, (now - created_at).total_seconds() / 86_400)
        p_open = 0.85 if age_days < 7 else 0.25
        status = "open" if rng.random() < p_open else rng.choice(("in_progress", "done", "closed", "done"))
        updated_at = created_at
        if status != "open" or rng.random() < 0.4:
            updated_at = created_at + timedelta(seconds=rng.randint(1, int(max(2, min(age_days, 30) * 86_400))))
            updated_at = min(updated_at, max(now, created_at))
        return {
            "feedback_id": feedback_id,
            "feedback_number": number,
            "public_link": f"https://app.usersnap.com/l/feedback/{feedback_id}",
            "project_id": self.project["project_id"],
            "created_at": iso(created_at),
            "updated_at": iso(updated_at),
            "status_type": status,
            "priority": rng.choice((*PRIORITIES, None, None)),
            "assignee_id": rng.choice((*self.ctx.member_ids, None, None, None)),
            "is_demo": rng.random() < 0.02,
            "email": self._email(),
            "client": self._client(),
            "custom_data": self._custom_data(),
            "screenshot": self._screenshot(with_text),
            "screen_recording": (
                {
                    "file_resource_url": f"https://usersnap-uploads.example/rec/{new_uuid(rng)}.webm",
                    "mime_type": "video/webm",
                }
                if rng.random() < 0.12
                else None
            ),
            "ordered_inputs": inputs,
            "labels": self._labels(topic),
        }

    def malformed(self, kind: str, created_at: datetime, number: int, now: datetime) -> dict[str, Any]:
        """An item the importer must reject (the spec's three reasons), otherwise like a real one."""
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"unknown malformed kind {kind!r}; expected one of {', '.join(MALFORMED_KINDS)}")
        item = self.make(created_at, number, now)
        if kind == "no_feedback_id":
            del item["feedback_id"]
        elif kind == "bad_created_at":
            item["created_at"] = self.rng.choice(("yesterday at noon", "2026-13-45T25:61:00Z", "", "n/a"))
        else:
            item["ordered_inputs"] = "Great app, but the export is broken"
            item["labels"] = {"name": "Bug"}
            item["feedback_number"] = "x"
        return item


# --------------------------------------------------------------------------------------------------
# timelines


def _poisson(rng: random.Random, lam: float) -> int:
    """Poisson draw (Knuth for small means, normal approximation above 30)."""
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def seed_times(rng: random.Random, now: datetime, days: int, per_day: float) -> list[datetime]:
    """Creation times over the UTC days from `now - days` to `now` (< now), sorted.

    Volume varies by weekday and at random; a few items sit exactly on 00:00:00.000000 and
    23:59:59.999999 so day-window boundaries get exercised.
    """
    now = utc(now)
    now_us = to_us(now)
    first_day_us = (now_us // DAY_US - days) * DAY_US
    out: list[int] = []
    day_us = first_day_us
    boundary_days = {rng.randrange(0, days + 1) for _ in range(max(2, days // 20))}
    index = 0
    while day_us <= now_us:
        weekday = from_us(day_us).weekday()
        lam = per_day * (0.55 if weekday >= 5 else 1.18) * rng.uniform(0.6, 1.4)
        stamps = sorted(day_us + rng.randrange(DAY_US) for _ in range(_poisson(rng, lam)))
        if index in boundary_days or index == 1:
            stamps.append(day_us)  # exactly midnight
            stamps.append(day_us + DAY_US - 1)  # 23:59:59.999999
        out.extend(s for s in stamps if s < now_us)
        day_us += DAY_US
        index += 1
    out.sort()
    return [from_us(us) for us in out]


def even_times(start: datetime, end: datetime, n: int) -> list[datetime]:
    """`n` times evenly spread over [start, end): the first exactly at `start`."""
    if n <= 0:
        return []
    start_us, end_us = to_us(utc(start)), to_us(utc(end))
    if end_us <= start_us:
        raise ValueError("end must be after start")
    span = end_us - start_us
    return [from_us(start_us + (span * i) // n) for i in range(n)]

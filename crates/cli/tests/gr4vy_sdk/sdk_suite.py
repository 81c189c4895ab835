"""giftd's Gr4vy facade (`/gr4vy`, docs/GR4VY.md) driven by Gr4vy's OFFICIAL Python SDK
(`gr4vy==2.4.27` from PyPI), checking for every answer that the SDK's parsed model says
what the server sent, field by field.

Setup (once; the venv lives in target/, out of the source tree):

    python3 -m venv target/gr4vy-venv
    target/gr4vy-venv/bin/pip install gr4vy==2.4.27

Run against a running giftd (the server root, not /gr4vy; a merchant API key):

    GIFTD_BASE_URL=http://127.0.0.1:8080 GIFTD_API_KEY=<key> \
        target/gr4vy-venv/bin/python crates/cli/tests/gr4vy_sdk/sdk_suite.py [--core]

Those are the only inputs. The script makes its own fixtures with the native API (plain
urllib, `POST /v1/programs`, `POST /v1/cards`, `POST /v1/cards/{id}/freeze`): one USD
program and 12 cards: 11 virtual cards funded at issue (two with $100.00, eight with $50.00,
one of them then frozen, one with $1.00 to fail for want of funds) and one physical card
left inactive for the activation step. Run it against a fresh merchant: it stores cards
for two buyers of its own (`sdk-buyer-<run>`), so reruns do not collide, but the
merchant-wide `gift_cards.list` grows with every run.

How it talks to giftd:
- `Gr4vy(server_url=<root>/gr4vy, bearer_auth=<API key>, client=httpx.Client(...))`: a plain
  string `bearer_auth` is sent as `Authorization: Bearer <key>` (the SDK signs a JWT only
  when given `bearer_auth=gr4vy.auth.with_token(private_key)`, a callable; giftd takes the
  merchant key as is).
- The raw answer of every call is captured with an httpx `response` event hook on that
  client (it reads the body; with the SDK's retries on 5XX, the last answer is the one the
  SDK parsed).
- Each step calls one SDK method, then walks the raw JSON and the parsed model together:
  * a raw field the model has no field for ("not in SDK model: ignored"),
  * a raw field the model has but parsed as UNSET ("dropped by the SDK"): this is how the
    SDK treats an optional nested object that fails validation (the dict matches the empty
    `Unset` model of `OptionalNullable[...]`), silently,
  * a value that differs after parsing: type coercions (`"5"` -> 5, `1` -> True, an epoch
    integer or a date-only string -> datetime, sub-microsecond digits cut off), or a field
    the raw answer lacks that the model fills with a default,
  * an enum value outside the SDK's enum (the SDK keeps it as `UnrecognizedStr`; listed
    because a stricter client would refuse it),
  * an id the spec marks `format: uuid` that is not one ("not a uuid"; the SDK does not
    check, but the spec and stricter clients do; see vendor-apis-2.md 2.3).
- `--core` leaves out the transaction methods beyond gift cards that Gr4vy has and giftd
  does not plan (update, sync, increment_authorization, captures, events, actions,
  settlements, refund settlements); by default they run too, marked `"scope": "extra"`.
- Some steps expect an error (`"expect": "Error404"`): they pass when the SDK raises that
  error class, and the error body is compared with the SDK's error model like any answer.

Output: one JSON line per step, `{"step", "status", "mismatches": [...]}` plus `error` when
the call raised (or did not raise the expected error) and `parsed_as` for union answers.
Exit code 0 and a last line `ALL OK` when every step matched; otherwise a last line
`{"summary": ...}` and exit code 1.
"""

import datetime
import enum
import json
import os
import re
import sys
import typing
import urllib.error
import urllib.request
import uuid

import httpx
import pydantic
from gr4vy import Gr4vy, errors, models
from gr4vy.types import BaseModel
from gr4vy.types.basemodel import UnrecognizedInt, UnrecognizedStr, Unset

BASE = os.environ["GIFTD_BASE_URL"].rstrip("/")
KEY = os.environ["GIFTD_API_KEY"]
CORE_ONLY = "--core" in sys.argv[1:]
RUN = uuid.uuid4().hex[:8]

# ---- the native API, for fixtures ----


def native(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + KEY)
    request.add_header("Content-Type", "application/json")
    if method == "POST":
        request.add_header("Idempotency-Key", "sdk-suite-" + uuid.uuid4().hex)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read()
            return answer.status, json.loads(text) if text else None
    except urllib.error.HTTPError as failure:
        text = failure.read()
        raise SystemExit(f"fixture {method} {path} failed: {failure.code} {text[:500]!r}")


def card(program_id, amount=None, kind="virtual"):
    body = {"program_id": program_id, "kind": kind}
    if amount is not None:
        body["amount"] = amount
    return native("POST", "/v1/cards", body)[1]


# ---- the SDK, with every answer captured raw ----

ANSWERS = []


def keep(response):
    response.read()
    ANSWERS.append(response)


http = httpx.Client(follow_redirects=True, event_hooks={"response": [keep]}, timeout=30)
sdk = Gr4vy(server_url=BASE + "/gr4vy", bearer_auth=KEY, client=http)

# ---- comparing raw JSON with a parsed model ----

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# The fields Gr4vy's spec marks `format: uuid`, by SDK model (vendor-apis-2.md 2.2, 2.3 and
# gr4vy-gift-card-schemas.txt).
UUID_FIELDS = {
    "GiftCard": ["id"],
    "GiftCardSummary": ["id"],
    "GiftCardService": ["id"],
    "GiftCardRedemption": ["id"],
    "TransactionGiftCard": ["id"],
    "GiftCardIssuance": ["id"],
    "Buyer": ["id"],
    "Refund": ["id", "transaction_id", "target_id"],
    "Transaction": ["id", "checkout_session_id", "reauthorized_from_transaction_id"],
    "TransactionSummary": ["id", "checkout_session_id", "reauthorized_from_transaction_id"],
}
ISO = re.compile(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?)(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$")


def short(value):
    text = json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def parse_datetime(text):
    """Parses an RFC 3339 date-time, keeping every fractional digit; None if it is not one."""
    match = ISO.match(text) if isinstance(text, str) else None
    if not match:
        return None
    head, fraction, zone = match.groups()
    fraction = fraction or ""
    moment = datetime.datetime.fromisoformat(head + ("." + fraction[:6].ljust(6, "0") if fraction else ""))
    if zone:
        zone = "+00:00" if zone == "Z" else zone
        moment = moment.replace(tzinfo=datetime.datetime.fromisoformat("2000-01-01T00:00:00" + zone).tzinfo)
    return moment, fraction, bool(zone)


def models_in(annotation):
    """The SDK model classes an annotation names (through Optional, Union, Annotated...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation is not Unset:
        return [annotation]
    inner = typing.get_args(annotation)
    if not inner and hasattr(annotation, "__value__"):  # a bare TypeAliasType
        inner = (annotation.__value__,)
    found = []
    for one in inner:
        found.extend(model for model in models_in(one) if model not in found)
    return found


def why_dropped(raw, annotation):
    """Why an optional nested object was parsed as UNSET: its model's validation errors."""
    reasons = []
    for model in models_in(annotation):
        try:
            model.model_validate(raw)
        except pydantic.ValidationError as failure:
            problems = "; ".join(
                ".".join(str(part) for part in problem["loc"]) + ": " + problem["msg"] for problem in failure.errors()
            )
            reasons.append(f"{model.__name__}: {problems}")
    return " / ".join(reasons) or "no validation error found"


def check_uuids(raw, model, path, out):
    for key in UUID_FIELDS.get(model.__name__, []):
        value = raw.get(key)
        if isinstance(value, str) and not UUID.match(value):
            out.append(f"{path}.{key}: not a uuid ({short(value)}; {model.__name__}.{key} is format: uuid)")


def compare(raw, parsed, path, out, annotation=None):
    if isinstance(parsed, Unset):
        reason = why_dropped(raw, annotation) if isinstance(raw, dict) else "not an object"
        out.append(f"{path}: present in raw ({short(raw)}) but dropped by the SDK (parsed as UNSET): {reason}")
        if isinstance(raw, dict):
            for model in models_in(annotation):
                check_uuids(raw, model, path, out)
    elif isinstance(parsed, BaseModel):
        if not isinstance(raw, dict):
            out.append(f"{path}: raw {short(raw)} is not an object, SDK parsed {type(parsed).__name__}")
            return
        model = type(parsed)
        fields = {(info.alias or name): name for name, info in model.model_fields.items()}
        for key, value in raw.items():
            if key not in fields:
                out.append(f"{path}.{key}: in raw ({short(value)}), not in SDK model {model.__name__}: ignored")
            else:
                name = fields[key]
                compare(value, getattr(parsed, name), f"{path}.{key}", out, model.model_fields[name].annotation)
        for key, name in fields.items():
            if key not in raw:
                value = getattr(parsed, name)
                if not isinstance(value, Unset) and value is not None:
                    out.append(f"{path}.{key}: absent in raw, SDK filled in {short(value)}")
        check_uuids(raw, model, path, out)
    elif isinstance(parsed, list):
        if not isinstance(raw, list):
            out.append(f"{path}: raw {short(raw)} is not an array")
        elif len(raw) != len(parsed):
            out.append(f"{path}: raw has {len(raw)} items, SDK {len(parsed)}")
        else:
            items = typing.get_args(annotation)
            for index, (one, other) in enumerate(zip(raw, parsed)):
                compare(one, other, f"{path}[{index}]", out, items[0] if items else None)
    elif isinstance(parsed, dict):
        if not isinstance(raw, dict):
            out.append(f"{path}: raw {short(raw)} is not an object")
        else:
            for key in sorted(set(raw) | set(parsed)):
                if key not in parsed:
                    out.append(f"{path}.{key}: in raw ({short(raw[key])}), dropped by the SDK")
                elif key not in raw:
                    out.append(f"{path}.{key}: absent in raw, SDK has {short(parsed[key])}")
                else:
                    compare(raw[key], parsed[key], f"{path}.{key}", out)
    elif isinstance(parsed, datetime.datetime):
        seen = parse_datetime(raw)
        if seen is None:
            out.append(f"{path}: raw {short(raw)} is not an RFC 3339 date-time, SDK parsed {parsed.isoformat()}")
            return
        moment, fraction, zoned = seen
        if not zoned:
            out.append(f"{path}: raw {short(raw)} has no time zone")
        if moment != parsed:
            out.append(f"{path}: raw {short(raw)} != SDK {parsed.isoformat()}")
        elif len(fraction) > 6 and fraction[6:].strip("0"):
            out.append(f"{path}: raw {short(raw)} has sub-microsecond digits, SDK keeps {parsed.isoformat()}")
    elif isinstance(parsed, datetime.date):
        if not isinstance(raw, str) or raw != parsed.isoformat():
            out.append(f"{path}: raw {short(raw)} != SDK date {parsed.isoformat()}")
    elif isinstance(parsed, enum.Enum):
        if raw != parsed.value:
            out.append(f"{path}: raw {short(raw)} != SDK {short(parsed.value)}")
    elif isinstance(parsed, bool):
        if not isinstance(raw, bool) or raw != parsed:
            out.append(f"{path}: raw {short(raw)} != SDK {parsed!r} (bool)")
    elif isinstance(parsed, int):
        if not isinstance(raw, int) or isinstance(raw, bool) or raw != parsed:
            out.append(f"{path}: raw {short(raw)} != SDK {parsed!r} (int)")
        elif isinstance(parsed, UnrecognizedInt):
            out.append(f"{path}: {raw} is not in the SDK's enum (kept as UnrecognizedInt)")
    elif isinstance(parsed, float):
        if not isinstance(raw, (int, float)) or isinstance(raw, bool) or raw != parsed:
            out.append(f"{path}: raw {short(raw)} != SDK {parsed!r} (number)")
    elif isinstance(parsed, str):
        if not isinstance(raw, str) or raw != parsed:
            out.append(f"{path}: raw {short(raw)} != SDK {short(str(parsed))} (string)")
        elif isinstance(parsed, UnrecognizedStr):
            out.append(f"{path}: {short(raw)} is not in the SDK's enum (kept as UnrecognizedStr)")
    elif parsed is None:
        if raw is not None:
            out.append(f"{path}: raw {short(raw)}, SDK None")
    elif raw != parsed:
        out.append(f"{path}: raw {short(raw)} != SDK {short(parsed)} ({type(parsed).__name__})")


# ---- steps ----

RESULTS = []


def raw_json(response):
    if response is None or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def step(name, call, expect=None, scope="core", unwrap=None, want=None):
    """Runs one SDK call; returns (parsed, raw JSON). `expect` names an SDK error class the
    call must raise; `unwrap` takes the model out of an answer wrapper (list pagers); `want`
    names the model a union answer must parse as."""
    if scope == "extra" and CORE_ONLY:
        return None, None
    ANSWERS.clear()
    line = {"step": name}
    if scope != "core":
        line["scope"] = scope
    mismatches = []
    parsed = error = None
    try:
        parsed = call()
    except Exception as failure:  # the step reports whatever the SDK raised
        error = failure
    response = ANSWERS[-1] if ANSWERS else None
    raw = raw_json(response)
    line["status"] = response.status_code if response is not None else None
    if response is not None:
        line["request"] = f"{response.request.method} {response.request.url.path}"
    if error is not None:
        if expect is not None and isinstance(error, expect) and hasattr(error, "data"):
            compare(raw, error.data, "$", mismatches)
            line["expect"] = expect.__name__
        else:
            line["error"] = f"{type(error).__name__}: {error}"
            cause = getattr(error, "cause", None)
            if cause is not None:
                line["error"] += " | " + " ".join(str(cause).split())[:1500]
            if hasattr(error, "data"):
                mine = []
                compare(raw, error.data, "$", mine)
                if mine:
                    line["error_body_mismatches"] = mine
            line["raw"] = raw if len(json.dumps(raw)) <= 600 else short(raw)
    elif expect is not None:
        line["error"] = f"expected {expect.__name__}, the call succeeded"
    else:
        model = unwrap(parsed) if unwrap else parsed
        if model is None:
            if response is not None and response.content:
                mismatches.append(f"$: raw body {short(raw)}, SDK returned None")
        else:
            if isinstance(model, BaseModel):
                line["parsed_as"] = type(model).__name__
            if want is not None and not isinstance(model, want):
                mismatches.append(f"$: parsed as {type(model).__name__}, the request asked for {want.__name__}")
            compare(raw, model, "$", mismatches)
    line["mismatches"] = mismatches
    RESULTS.append(not mismatches and "error" not in line)
    print(json.dumps(line), flush=True)
    return parsed, raw


def field(raw, *path):
    """A value inside a raw answer, or None."""
    for key in path:
        if isinstance(raw, dict):
            raw = raw.get(key)
        elif isinstance(raw, list) and isinstance(key, int) and len(raw) > key:
            raw = raw[key]
        else:
            return None
    return raw


def result(answer):
    return getattr(answer, "result", answer)


# ---- fixtures ----

program = native("POST", "/v1/programs", {"name": f"SDK suite {RUN}", "currency": "USD", "expiry_months": 60})[1]
P = program["id"]
vault = card(P, 10000)  # stored, listed, read, deleted
stored = card(P, 10000)  # stored for the buyers
tx_auth = card(P, 5000)  # authorize, capture, refunds
tx_id = card(P, 5000)  # intent capture, by id
tx_void = card(P, 5000)
tx_partial = card(P, 5000)
tx_prefer = card(P, 5000)
tx_cancel = card(P, 5000)
tx_poor = card(P, 100)  # insufficient funds
tx_declined = card(P, 5000)
frozen = card(P, 5000)
native("POST", f"/v1/cards/{frozen['id']}/freeze", {})
physical = card(P, kind="physical")
BUYER = f"sdk-buyer-{RUN}"
BUYER2 = f"sdk-buyer2-{RUN}"
VISA = {"number": "4242424242424242", "expiration_date": "12/30", "security_code": "123"}


def pay(**extra):
    return models.CardWithURLPaymentMethodCreate(**VISA, **extra)


def by_number(one, amount):
    return models.GiftCardTransactionCreate(number=one["number"], pin=one["security_code"], amount=amount)


def by_id(one, amount):
    return models.GiftCardTokenTransactionCreate(id=one["id"], amount=amount)


def key():
    return "sdk-" + uuid.uuid4().hex


# ---- gift cards ----

step(
    "gift_cards.balances.list",
    lambda: sdk.gift_cards.balances.list(
        items=[
            models.GiftCardRequest(number=vault["number"], pin=vault["security_code"]),
            models.GiftCardStoredRequest(id=stored["id"]),
            models.GiftCardRequest(number=vault["number"][:-1] + str((int(vault["number"][-1]) + 1) % 10), pin="00000000"),
            models.GiftCardRequest(number=frozen["number"], pin=frozen["security_code"]),
        ]
    ),
)
step("gift_cards.create (no buyer)", lambda: sdk.gift_cards.create(number=vault["number"], pin=vault["security_code"]))
step(
    "gift_cards.create (buyer_external_identifier)",
    lambda: sdk.gift_cards.create(number=stored["number"], pin=stored["security_code"], buyer_external_identifier=BUYER),
)
step(
    "gift_cards.create (buyer_id)",
    lambda: sdk.gift_cards.create(number=vault["number"], pin=vault["security_code"], buyer_id=BUYER2),
)
step(
    "gift_cards.create (wrong pin)",
    lambda: sdk.gift_cards.create(number=stored["number"], pin="00000000", buyer_external_identifier=BUYER),
    expect=errors.Error400,
)
_, first_page = step("gift_cards.list (limit=2)", lambda: sdk.gift_cards.list(limit=2), unwrap=result)
page = None
if field(first_page, "next_cursor"):
    page, _ = step(
        "gift_cards.list (page 2, cursor)",
        lambda: sdk.gift_cards.list(limit=2, cursor=first_page["next_cursor"]),
        unwrap=result,
    )
step("gift_cards.list (buyer_external_identifier)", lambda: sdk.gift_cards.list(buyer_external_identifier=BUYER), unwrap=result)
step("gift_cards.list (buyer_id)", lambda: sdk.gift_cards.list(buyer_id=BUYER2), unwrap=result)
step("gift_cards.get", lambda: sdk.gift_cards.get(gift_card_id=stored["id"]))
step("gift_cards.get (unknown id)", lambda: sdk.gift_cards.get(gift_card_id="card_doesnotexist"), expect=errors.Error404)
step("buyers.gift_cards.list (buyer_external_identifier)", lambda: sdk.buyers.gift_cards.list(buyer_external_identifier=BUYER))
step("buyers.gift_cards.list (buyer_id)", lambda: sdk.buyers.gift_cards.list(buyer_id=BUYER2))
step("gift_cards.delete", lambda: sdk.gift_cards.delete(gift_card_id=vault["id"]))
step(
    "gift_cards.activations.create",
    lambda: sdk.gift_cards.activations.create(
        number=physical["number"],
        pin=physical["security_code"],
        amount=2500,
        currency="USD",
        external_identifier=f"act-{RUN}",
        store=True,
        buyer_external_identifier=BUYER,
        idempotency_key=key(),
    ),
)
step(
    "gift_cards.issuances.create",
    lambda: sdk.gift_cards.issuances.create(
        # A theme is a giftd program: its id (or a promotion code of exactly one program).
        theme=program["id"], amount=2500, currency="USD", external_identifier=f"iss-{RUN}", idempotency_key=key()
    ),
)

# ---- transactions paid with gift cards ----

_, auth = step(
    "transactions.create (authorize, card + gift card by number)",
    lambda: sdk.transactions.create(
        amount=5000,
        currency="USD",
        intent="authorize",
        payment_method=pay(),
        gift_cards=[by_number(tx_auth, 2000)],
        external_identifier=f"auth-{RUN}",
        idempotency_key=key(),
    ),
)
T1 = field(auth, "id") or "chk_missing"
step("transactions.get", lambda: sdk.transactions.get(transaction_id=T1))
step("transactions.capture (full)", lambda: sdk.transactions.capture(transaction_id=T1, idempotency_key=key()))
_, gc_refund = step(
    "transactions.refunds.create (gift-card-redemption, partial)",
    lambda: sdk.transactions.refunds.create(
        transaction_id=T1,
        target_type="gift-card-redemption",
        target_id=field(auth, "gift_card_redemptions", 0, "id") or "gcr_missing",
        amount=500,
        external_identifier=f"rf1-{RUN}",
        idempotency_key=key(),
    ),
)
step(
    "transactions.refunds.create (payment method, default target)",
    lambda: sdk.transactions.refunds.create(transaction_id=T1, amount=1000, reason="sdk suite", idempotency_key=key()),
)
step("transactions.refunds.list", lambda: sdk.transactions.refunds.list(transaction_id=T1))
step(
    "transactions.refunds.get",
    lambda: sdk.transactions.refunds.get(transaction_id=T1, refund_id=field(gc_refund, "id") or "chr_missing"),
)
step("refunds.get", lambda: sdk.refunds.get(refund_id=field(gc_refund, "id") or "chr_missing"))
step(
    "transactions.refunds.all.create",
    lambda: sdk.transactions.refunds.all.create(transaction_id=T1, external_identifier=f"rfall-{RUN}", idempotency_key=key()),
)
step("transactions.get (after refunds)", lambda: sdk.transactions.get(transaction_id=T1))

step(
    "transactions.create (capture, gift card by id only)",
    lambda: sdk.transactions.create(
        amount=3000, currency="USD", intent="capture", gift_cards=[by_id(tx_id, 3000)], idempotency_key=key()
    ),
)

_, voidable = step(
    "transactions.create (authorize, for void)",
    lambda: sdk.transactions.create(
        amount=4000, currency="USD", payment_method=pay(), gift_cards=[by_id(tx_void, 1500)], idempotency_key=key()
    ),
)
step("transactions.void", lambda: sdk.transactions.void(transaction_id=field(voidable, "id") or "chk_missing", idempotency_key=key()))

_, partial = step(
    "transactions.create (authorize, for partial capture)",
    lambda: sdk.transactions.create(
        amount=4000, currency="USD", payment_method=pay(), gift_cards=[by_number(tx_partial, 1000)], idempotency_key=key()
    ),
)
step(
    "transactions.capture (partial amount)",
    lambda: sdk.transactions.capture(transaction_id=field(partial, "id") or "chk_missing", amount=2000, idempotency_key=key()),
)

_, prefer = step(
    "transactions.create (authorize, for capture with prefer)",
    lambda: sdk.transactions.create(
        amount=4000, currency="USD", payment_method=pay(), gift_cards=[by_id(tx_prefer, 1000)], idempotency_key=key()
    ),
)
step(
    "transactions.capture (prefer resource=transaction-capture)",
    lambda: sdk.transactions.capture(
        transaction_id=field(prefer, "id") or "chk_missing", prefer=["resource=transaction-capture"], idempotency_key=key()
    ),
    want=models.TransactionCapture,
)

_, cancelable = step(
    "transactions.create (authorize, for cancel)",
    lambda: sdk.transactions.create(
        amount=4000, currency="USD", payment_method=pay(), gift_cards=[by_id(tx_cancel, 1000)], idempotency_key=key()
    ),
)
step("transactions.cancel", lambda: sdk.transactions.cancel(transaction_id=field(cancelable, "id") or "chk_missing"))

step(
    "transactions.create (gift card short of funds: intent_outcome failed)",
    lambda: sdk.transactions.create(
        amount=5000, currency="USD", payment_method=pay(), gift_cards=[by_number(tx_poor, 2000)], idempotency_key=key()
    ),
)
step(
    "transactions.create (payment declined: redemptions skipped)",
    lambda: sdk.transactions.create(
        amount=5000,
        currency="USD",
        payment_method=models.CardWithURLPaymentMethodCreate(
            number="4000000000000002", expiration_date="12/30", security_code="123"
        ),
        gift_cards=[by_id(tx_declined, 2000)],
        idempotency_key=key(),
    ),
)
step(
    "transactions.create (wrong gift card pin)",
    lambda: sdk.transactions.create(
        amount=5000,
        currency="USD",
        payment_method=pay(),
        gift_cards=[models.GiftCardTransactionCreate(number=tx_declined["number"], pin="00000000", amount=100)],
        idempotency_key=key(),
    ),
    expect=errors.Error400,
)
step("transactions.get (unknown id)", lambda: sdk.transactions.get(transaction_id="chk_doesnotexist"), expect=errors.Error404)

_, listed = step("transactions.list (limit=2)", lambda: sdk.transactions.list(limit=2), unwrap=result)
if field(listed, "next_cursor"):
    step(
        "transactions.list (page 2, cursor)",
        lambda: sdk.transactions.list(limit=2, cursor=listed["next_cursor"]),
        unwrap=result,
    )
step(
    "transactions.list (filters: has_gift_card_redemptions, gift_card_id, status)",
    lambda: sdk.transactions.list(
        has_gift_card_redemptions=True,
        gift_card_id=tx_auth["id"],
        status=["capture_succeeded"],
        external_identifier=f"auth-{RUN}",
    ),
    unwrap=result,
)

# ---- the rest of the SDK's transaction methods (Gr4vy features beyond gift cards) ----

step(
    "transactions.update",
    lambda: sdk.transactions.update(transaction_id=T1, external_identifier=f"upd-{RUN}"),
    scope="extra",
)
step("transactions.sync", lambda: sdk.transactions.sync(transaction_id=T1), scope="extra")
step(
    "transactions.increment_authorization",
    lambda: sdk.transactions.increment_authorization(
        transaction_id=field(partial, "id") or "chk_missing", amount=100, idempotency_key=key()
    ),
    scope="extra",
)
step("transactions.captures.list", lambda: sdk.transactions.captures.list(transaction_id=T1), scope="extra")
step(
    "transactions.captures.get",
    lambda: sdk.transactions.captures.get(transaction_id=T1, capture_id=str(uuid.uuid4())),
    scope="extra",
)
step("transactions.events.list", lambda: sdk.transactions.events.list(transaction_id=T1), scope="extra", unwrap=result)
step("transactions.actions.list", lambda: sdk.transactions.actions.list(transaction_id=T1), scope="extra")
step("transactions.settlements.list", lambda: sdk.transactions.settlements.list(transaction_id=T1), scope="extra")
step(
    "transactions.refund_settlements.list",
    lambda: sdk.transactions.refund_settlements.list(transaction_id=T1),
    scope="extra",
)

failed = RESULTS.count(False)
if failed:
    print(json.dumps({"summary": {"steps": len(RESULTS), "failed": failed}}))
    sys.exit(1)
print("ALL OK")

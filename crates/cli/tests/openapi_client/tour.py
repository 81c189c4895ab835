"""The README's five-minute tour, through a client generated from giftd's /openapi.json by
openapi-python-client (a standard generator): if the document misdescribes a request or an
answer, a call here fails to build, to send or to parse.

Usage: tour.py <folder holding the generated package> <giftd base URL> <API key>
Prints one JSON line per step; exits non-zero at the first step that does not go as the
README says.
"""

import json
import sys

sys.path.insert(0, sys.argv[1])

from giftd_native_api_client import AuthenticatedClient  # noqa: E402
from giftd_native_api_client.api.cards import (  # noqa: E402
    create_card,
    get_card,
    list_card_transactions,
    load_card,
    lookup_card,
    redeem_card,
    transfer_card,
)
from giftd_native_api_client.api.checkouts import create_checkout  # noqa: E402
from giftd_native_api_client.api.holds import capture_hold, create_hold  # noqa: E402
from giftd_native_api_client.api.programs import create_program  # noqa: E402
from giftd_native_api_client.api.transactions import refund_transaction  # noqa: E402
from giftd_native_api_client.models import (  # noqa: E402
    CaptureRequest,
    CardResponse,
    CheckoutGiftCard,
    CheckoutPaymentMethod,
    CheckoutResponse,
    CreateCardRequest,
    CreateCheckoutRequest,
    CreateHoldRequest,
    CreateProgramRequest,
    ErrorBody,
    HoldResponse,
    LoadRequest,
    LookupRequest,
    ProgramResponse,
    RedeemRequest,
    RefundRequest,
    TransactionResponse,
    TransferRequest,
    TransferResponse,
)

client = AuthenticatedClient(base_url=sys.argv[2], token=sys.argv[3], raise_on_unexpected_status=True)


def step(name, answer, expected_type):
    if not isinstance(answer, expected_type):
        print(json.dumps({"step": name, "ok": False, "got": repr(answer)}))
        sys.exit(1)
    print(json.dumps({"step": name, "ok": True}))
    return answer


def check(name, condition, detail):
    if not condition:
        print(json.dumps({"step": name, "ok": False, "got": detail}))
        sys.exit(1)


program = step(
    "create a program",
    create_program.sync(
        client=client,
        body=CreateProgramRequest(name="Bakery gift card", currency="USD", expiry_months=60, number_prefix="6036"),
    ),
    ProgramResponse,
)
card = step(
    "issue a card with $50.00",
    create_card.sync(client=client, body=CreateCardRequest(program_id=program.id, kind="virtual", amount=5000)),
    CardResponse,
)
check("the card shows its number once", isinstance(card.number, str) and card.number.startswith("6036"), card.number)

spent = step("spend $12.50", redeem_card.sync(card.id, client=client, body=RedeemRequest(amount=1250)), TransactionResponse)
check("spend $12.50", spent.balance_after == 3750, spent.balance_after)
refused = step(
    "spend more than is left",
    redeem_card.sync(card.id, client=client, body=RedeemRequest(amount=99999)),
    ErrorBody,
)
check("spend more than is left", refused.error.code == "insufficient_funds", refused.error.code)
partial = step(
    "spend what is left",
    redeem_card.sync(card.id, client=client, body=RedeemRequest(amount=99999, allow_partial=True)),
    TransactionResponse,
)
check("spend what is left", partial.amount == 3750 and partial.balance_after == 0, partial.amount)

step("load $20.00", load_card.sync(card.id, client=client, body=LoadRequest(amount=2000)), TransactionResponse)
hold = step(
    "hold $15.00",
    create_hold.sync(card.id, client=client, body=CreateHoldRequest(amount=1500, expires_in_seconds=600)),
    HoldResponse,
)
held = step("read the card", get_card.sync(card.id, client=client), CardResponse)
check("read the card", (held.held, held.available) == (1500, 500), (held.held, held.available))
captured = step(
    "capture $12.00", capture_hold.sync(hold.id, client=client, body=CaptureRequest(amount=1200)), TransactionResponse
)
check("capture $12.00", captured.amount == 1200, captured.amount)

history = list_card_transactions.sync(card.id, client=client, limit="1")
check("read the newest transaction", len(history.data) == 1, history)
capture = history.data[0]
refund = step(
    "refund $2.00 of the capture",
    refund_transaction.sync(capture.id, client=client, body=RefundRequest(amount=200)),
    TransactionResponse,
)
check("refund $2.00 of the capture", refund.amount == 200, refund.amount)

first = step(
    "redeem with an Idempotency-Key",
    redeem_card.sync(card.id, client=client, body=RedeemRequest(amount=100), idempotency_key="order-1001"),
    TransactionResponse,
)
again = step(
    "the same request again",
    redeem_card.sync(card.id, client=client, body=RedeemRequest(amount=100), idempotency_key="order-1001"),
    TransactionResponse,
)
check("the same request again replays the first answer", again.id == first.id, (first.id, again.id))

found = step(
    "look the card up by number and code",
    lookup_card.sync(client=client, body=LookupRequest(number=card.number, security_code=card.security_code)),
    CardResponse,
)
check("look the card up by number and code", found.id == card.id, found.id)

moved = step(
    "move $3.00 to a new card",
    transfer_card.sync(card.id, client=client, body=TransferRequest(amount=300)),
    TransferResponse,
)
check("the new card shows its number once", isinstance(moved.target.number, str), moved.target.number)

checkout = step(
    "split a payment across the gift card and a payment card",
    create_checkout.sync(
        client=client,
        body=CreateCheckoutRequest(
            amount=2500,
            currency="USD",
            intent="capture",
            gift_cards=[CheckoutGiftCard(card_id=card.id, amount=500)],
            payment_method=CheckoutPaymentMethod(type_="card", number="4242424242424242"),
        ),
    ),
    CheckoutResponse,
)
check("the checkout is captured", checkout.status == "captured", checkout.status)

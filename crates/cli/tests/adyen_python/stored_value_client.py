"""Adyen's official Python library (PyPI `Adyen`) driving giftd's Stored Value API.

Run by crates/cli/tests/adyen_python_client.rs against a `giftd serve` it started, with:
  GIFTD_BASE_URL   e.g. http://127.0.0.1:8080
  GIFTD_API_KEY    a merchant's giftd API key
  GIFTD_STOCK      the number of an inactive EUR card the test imported (security code 1111)
and a program of that merchant with promotion code PY-1 (EUR, one denomination of 10.00).

The library is redirected to giftd the way Adyen's own tests read it: by setting the Stored
Value service's `baseUrl`. Each step prints one JSON line; any surprise raises, so the script
exits non-zero. The last line is `ALL OK`.
"""

import json
import os
import sys

import Adyen
from Adyen.exceptions import AdyenAPIAuthenticationError, AdyenAPIValidationError

BASE_URL = os.environ["GIFTD_BASE_URL"].rstrip("/") + "/pal/servlet/StoredValue/v46"
API_KEY = os.environ["GIFTD_API_KEY"]
STOCK = os.environ["GIFTD_STOCK"]
ACCOUNT = "YOUR_MERCHANT_ACCOUNT"


def client(**credentials):
    adyen = Adyen.Adyen(platform="test", **credentials)
    adyen.storedValue.stored_value_api.baseUrl = BASE_URL
    return adyen.storedValue.stored_value_api


def step(name, result, **extra):
    message = result.message
    line = {"step": name, "status": result.status_code, "resultCode": message.get("resultCode")}
    if "currentBalance" in message:
        line["balance"] = message["currentBalance"]["value"]
        line["currency"] = message["currentBalance"]["currency"]
    line.update(extra)
    print(json.dumps(line, sort_keys=True), flush=True)
    psp = message.get("pspReference", "")
    assert len(psp) == 16 and psp.isalnum(), f"{name}: pspReference {psp!r}"
    return message


def expect(condition, what):
    if not condition:
        raise AssertionError(what)


def main():
    api = client(xapikey=API_KEY)

    issued = step("issue", api.issue({
        "merchantAccount": ACCOUNT,
        "store": "YOUR_STORE_ID",
        "paymentMethod": {"type": "givex"},
        "giftCardPromoCode": "PY-1",
        "reference": "py-issue",
    }))
    expect(issued["resultCode"] == "Success", "issue succeeds")
    expect(issued["paymentMethod"]["type"] == "givex", "issue echoes the type")
    number = issued["paymentMethod"]["number"]
    code = issued["paymentMethod"]["securityCode"]
    expect(issued["currentBalance"] == {"currency": "EUR", "value": 1000}, "issued with 10.00 EUR")

    balance = step("checkBalance", api.check_balance({
        "merchantAccount": ACCOUNT,
        "paymentMethod": {"type": "givex", "number": number, "securityCode": code},
        "reference": "py-balance",
    }))
    expect(balance["currentBalance"]["value"] == 1000, "balance of the issued card")

    stock = {"type": "svs", "number": STOCK, "securityCode": "1111"}
    activated = step("changeStatus", api.change_status({
        "status": "active",
        "amount": {"currency": "EUR", "value": 1000},
        "merchantAccount": ACCOUNT,
        "paymentMethod": stock,
        "reference": "py-activate",
    }))
    expect(activated["currentBalance"]["value"] == 1000, "activated with 10.00 EUR")

    load = {
        "amount": {"currency": "EUR", "value": 2500},
        "merchantAccount": ACCOUNT,
        "paymentMethod": stock,
        "reference": "py-load",
    }
    loaded = step("load", api.load(load, idempotency_key="py-load-1"))
    retried = step("load retried", api.load(load, idempotency_key="py-load-1"))
    expect(retried == loaded, "a retry with the same Idempotency-Key gets the first answer")
    expect(loaded["currentBalance"]["value"] == 3500, "loaded once: 35.00 EUR")

    returned = step("load merchandiseReturn", api.load(dict(
        load, amount={"currency": "EUR", "value": 500}, loadType="merchandiseReturn", reference="py-return")))
    expect(returned["currentBalance"]["value"] == 4000, "return credited: 40.00 EUR")

    voided = step("voidTransaction", api.void_transaction({
        "merchantAccount": ACCOUNT,
        "originalReference": returned["pspReference"],
        "reference": "py-void",
    }))
    expect(voided["currentBalance"]["value"] == 3500, "return voided: 35.00 EUR")

    merged = step("mergeBalance", api.merge_balance({
        "merchantAccount": ACCOUNT,
        "sourcePaymentMethod": {"number": number, "securityCode": code},
        "paymentMethod": stock,
        "reference": "py-merge",
    }))
    expect(merged["currentBalance"]["value"] == 4500, "merged: 45.00 EUR")

    refused = step("checkBalance wrong code", api.check_balance({
        "merchantAccount": ACCOUNT,
        "paymentMethod": dict(stock, securityCode="0000"),
        "reference": "py-wrong",
    }))
    expect(refused["resultCode"] == "Refused", "a wrong code is refused")

    try:
        api.check_balance({"paymentMethod": stock, "reference": "py-no-account"})
        raise AssertionError("a request without merchantAccount is refused")
    except AdyenAPIValidationError as error:
        print(json.dumps({"step": "validation error", "status": error.status_code,
                          "errorCode": error.error_code}, sort_keys=True), flush=True)

    try:
        client(xapikey="gk_not_a_key").check_balance({
            "merchantAccount": ACCOUNT, "paymentMethod": stock, "reference": "py-bad-key"})
        raise AssertionError("an unknown key is refused")
    except AdyenAPIAuthenticationError as error:
        print(json.dumps({"step": "authentication error", "status": error.status_code}, sort_keys=True),
              flush=True)

    basic = step("checkBalance basic auth", client(username="ws@Company.Giftd", password=API_KEY).check_balance({
        "merchantAccount": ACCOUNT, "paymentMethod": stock, "reference": "py-basic"}))
    expect(basic["currentBalance"]["value"] == 4500, "HTTP Basic with the key as password")

    print("ALL OK", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # the test reads stderr; the exit status tells it
        print(f"FAILED: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        sys.exit(1)

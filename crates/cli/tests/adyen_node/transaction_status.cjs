'use strict';
// Adyen's official Node library (`@adyen/api-library`, pinned in package.json/package-lock.json
// beside this file) driving giftd's Terminal API cloud sync endpoint (`POST /sync`):
// TransactionStatus recovering a Payment's and a StoredValue Load's response, NotFound for an
// unknown message, Abort (200 with no body), and the card balance afterwards.
//
// Install the library once, outside the source tree (from the repository root):
//   mkdir -p target/adyen-node && cp crates/cli/tests/adyen_node/package*.json target/adyen-node/ \
//     && npm ci --prefix target/adyen-node --ignore-scripts --no-audit --no-fund
// Run (from the repository root; NODE_PATH may be left out when the install is at that place):
//   NODE_PATH=target/adyen-node/node_modules \
//   GIFTD_BASE_URL=http://127.0.0.1:18091 GIFTD_API_KEY=... GIFTD_CARD=<EUR card number> \
//   GIFTD_CARD_CODE=<its security code> node crates/cli/tests/adyen_node/transaction_status.cjs
//
// GIFTD_BASE_URL is giftd's root: the library posts to `${GIFTD_BASE_URL}/sync` with `X-API-Key`.
// The card needs at least 7.25 EUR. Prints one JSON line per step ({"step", "ok", ...}), then
// `ALL OK` and exits 0, or `FAILED: ...` and exits 1 (2 when it cannot start at all). A failed
// step's line carries the exchange on the wire; GIFTD_NODE_TRACE=1 adds it to every line.
//
// How the library is pointed at giftd (read in lib/src of version 32.1.0):
// - `new Client(new Config({apiKey, environment: "LIVE", terminalApiCloudEndpoint}))`: with
//   environment TEST the Client overwrites terminalApiCloudEndpoint with Adyen's test host; with
//   LIVE and no `region` it keeps ours. TerminalCloudAPI reads it once, when constructed
//   (`<endpoint>/sync`).
// - Its HTTP client always calls `https.request` with an `https.Agent`, so a plain `http://`
//   URL fails ("Protocol "http:" not supported"). For http the subclass below lends the
//   library `http.request`/`http.Agent` for the duration of its own createRequest; for
//   https it is left alone, with `certificatePath: "unencrypted"` (the library's own switch for
//   an unverified certificate: with a CA file it also insists on an Adyen terminal's CN).
// - ObjectSerializer writes only the attributes its models know, so the request is built as
//   plain objects with the wire's PascalCase names and anything the models lack is dropped.
//   Version 32.1.0 lacks what a gift card needs: PaymentInstrumentData has no
//   StoredValueAccountID (a Payment or BalanceInquiry would go out without the card) and
//   StoredValueAccountId names the number `Value` (no StoredValueID) and has no SecurityCode
//   (giftd's extension). extendModels() adds those attributes to the library's models; the
//   `library_models` line shows what the stock models keep. Answers are parsed by the same
//   serializer into model instances: unknown fields are dropped there too.
const assert = require('node:assert');
const http = require('node:http');
const https = require('node:https');
const path = require('node:path');
const util = require('node:util');

/** The library's folder: found through NODE_PATH, else at the documented install place. */
function libraryFolder() {
  try {
    return path.dirname(require.resolve('@adyen/api-library/package.json'));
  } catch (first) {
    const local = path.resolve(__dirname, '../../../../target/adyen-node/node_modules/@adyen/api-library');
    try {
      require.resolve(local);
      return local;
    } catch {
      console.error(`cannot load @adyen/api-library (set NODE_PATH to the install's node_modules): ${first.message}`);
      process.exit(2);
    }
  }
}

const LIBRARY = libraryFolder();
const LIBRARY_VERSION = require(path.join(LIBRARY, 'package.json')).version;
const Adyen = require(LIBRARY);
const T = Adyen.Types.terminal;

function env(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return value;
}

const BASE_URL = env('GIFTD_BASE_URL').replace(/\/+$/, '');
const API_KEY = env('GIFTD_API_KEY');
const CARD = env('GIFTD_CARD');
const CARD_CODE = env('GIFTD_CARD_CODE');

const SALE_ID = 'NODE-POS';
const POI_ID = 'V400m-1';
const CURRENCY = 'EUR';
const PAYMENT_AMOUNT = 7.25;
const LOAD_AMOUNT = 3.1;

// ServiceIDs (at most 10 characters) unique to this run: 6 of time, 1 random, a step suffix.
const RUN = (Date.now() % 36 ** 6).toString(36).padStart(6, '0') + Math.floor(Math.random() * 36).toString(36);
const sid = (suffix) => `${RUN}${suffix}`;

// ---- the library, pointed at giftd ----

/** The last exchange on the wire: what the serializer sent and what came back. */
const wire = { status: undefined, request: undefined, response: undefined };

class GiftdHttpClient extends Adyen.HttpURLConnectionClient {
  request(endpoint, json, config, isApiRequired, requestOptions) {
    Object.assign(wire, { status: undefined, request: json, response: undefined });
    return super.request(endpoint, json, config, isApiRequired, requestOptions).then(
      (body) => {
        wire.response = body;
        return body;
      },
      (error) => {
        wire.response = error && error.responseBody;
        throw error;
      },
    );
  }

  createRequest(endpoint, requestOptions, applicationName) {
    let request;
    if (new URL(endpoint).protocol === 'http:') {
      const lent = { request: https.request, Agent: https.Agent };
      https.request = http.request;
      https.Agent = http.Agent;
      try {
        request = super.createRequest(endpoint, requestOptions, applicationName);
      } finally {
        https.request = lent.request;
        https.Agent = lent.Agent;
      }
    } else {
      request = super.createRequest(endpoint, requestOptions, applicationName);
    }
    request.on('response', (response) => {
      wire.status = response.statusCode;
    });
    return request;
  }
}

function extendModels() {
  const add = (model, name, type) => {
    if (!model.attributeTypeMap.some((attribute) => attribute.baseName === name)) {
      model.attributeTypeMap.push({ name, baseName: name, type });
    }
  };
  add(T.PaymentInstrumentData, 'StoredValueAccountID', 'StoredValueAccountId');
  add(T.StoredValueAccountId, 'StoredValueID', 'string');
  add(T.StoredValueAccountId, 'SecurityCode', 'string');
}

const config = new Adyen.Config({
  apiKey: API_KEY,
  environment: Adyen.EnvironmentEnum.LIVE,
  terminalApiCloudEndpoint: BASE_URL,
  connectionTimeoutMillis: 15000,
});
if (BASE_URL.startsWith('https:')) config.certificatePath = 'unencrypted';
const client = new Adyen.Client(config, new GiftdHttpClient());
const terminal = new Adyen.TerminalCloudAPI(client);

// ---- messages ----

function header(category, serviceId) {
  return {
    ProtocolVersion: '3.0',
    MessageClass: 'Service',
    MessageCategory: category,
    MessageType: 'Request',
    ServiceID: serviceId,
    SaleID: SALE_ID,
    POIID: POI_ID,
  };
}

function account() {
  return {
    StoredValueAccountType: 'GiftCard',
    StoredValueProvider: 'givex',
    IdentificationType: 'PAN',
    EntryMode: ['Scanned'],
    StoredValueID: CARD,
    SecurityCode: CARD_CODE,
  };
}

function saleData(serviceId) {
  return { SaleTransactionID: { TransactionID: `node-${serviceId}`, TimeStamp: new Date().toISOString() } };
}

function paymentRequest(serviceId) {
  return {
    SaleToPOIRequest: {
      MessageHeader: header('Payment', serviceId),
      PaymentRequest: {
        SaleData: { ...saleData(serviceId), SaleReferenceID: `order-${serviceId}` },
        PaymentTransaction: { AmountsReq: { Currency: CURRENCY, RequestedAmount: PAYMENT_AMOUNT } },
        PaymentData: {
          PaymentType: 'Normal',
          PaymentInstrumentData: { PaymentInstrumentType: 'StoredValue', StoredValueAccountID: account() },
        },
      },
    },
  };
}

function loadRequest(serviceId) {
  return {
    SaleToPOIRequest: {
      MessageHeader: header('StoredValue', serviceId),
      StoredValueRequest: {
        SaleData: saleData(serviceId),
        StoredValueData: [
          { StoredValueTransactionType: 'Load', StoredValueAccountID: account(), Currency: CURRENCY, ItemAmount: LOAD_AMOUNT },
        ],
      },
    },
  };
}

function balanceRequest(serviceId) {
  return {
    SaleToPOIRequest: {
      MessageHeader: header('BalanceInquiry', serviceId),
      BalanceInquiryRequest: {
        PaymentAccountReq: {
          PaymentInstrumentData: { PaymentInstrumentType: 'StoredValue', StoredValueAccountID: account() },
        },
      },
    },
  };
}

function statusRequest(serviceId, reference, extra = {}) {
  return {
    SaleToPOIRequest: {
      MessageHeader: header('TransactionStatus', serviceId),
      TransactionStatusRequest: { ...extra, MessageReference: reference },
    },
  };
}

function abortRequest(serviceId, reference) {
  return {
    SaleToPOIRequest: {
      MessageHeader: header('Abort', serviceId),
      AbortRequest: { AbortReason: 'MerchantAbort', MessageReference: reference },
    },
  };
}

// ---- checks ----

const cents = (amount) => Math.round(amount * 100);

/** The parsed SaleToPOIResponse, its header checked against the request's. */
function answerOf(response, request) {
  const answer = response && response.SaleToPOIResponse;
  assert.ok(answer, `no SaleToPOIResponse (SaleToPOIRequest: ${JSON.stringify(response && response.SaleToPOIRequest)})`);
  const sent = request.SaleToPOIRequest.MessageHeader;
  const got = answer.MessageHeader || {};
  assert.deepStrictEqual(
    [got.MessageClass, got.MessageCategory, got.MessageType, got.ServiceID, got.SaleID, got.POIID],
    [sent.MessageClass, sent.MessageCategory, 'Response', sent.ServiceID, sent.SaleID, sent.POIID],
    'the answer header echoes the request',
  );
  return answer;
}

function same(actual, expected, what) {
  if (!util.isDeepStrictEqual(actual, expected)) {
    throw new assert.AssertionError({ message: `${what} differs`, actual, expected, operator: 'deepStrictEqual' });
  }
}

/** The raw JSON object at `names` in a wire body (the library's parse drops unknown fields). */
function raw(body, ...names) {
  return names.reduce((value, name) => (value == null ? value : value[name]), JSON.parse(body));
}

/** Checks a Success TransactionStatusResponse that repeats `original` (parsed and raw). */
function checkRepeated(status, reference, member, original) {
  const body = status.TransactionStatusResponse;
  assert.ok(body, 'no TransactionStatusResponse');
  assert.strictEqual(body.Response && body.Response.Result, 'Success', `Result (${JSON.stringify(body.Response)})`);
  const echoed = body.MessageReference || {};
  assert.deepStrictEqual(
    [echoed.SaleID, echoed.ServiceID, echoed.MessageCategory],
    [reference.SaleID, reference.ServiceID, reference.MessageCategory],
    'MessageReference echoed',
  );
  if (echoed.POIID !== undefined) assert.strictEqual(echoed.POIID, POI_ID, 'MessageReference.POIID');
  const repeated = body.RepeatedMessageResponse;
  assert.ok(repeated, 'no RepeatedMessageResponse');
  const repeatedHeader = repeated.MessageHeader;
  assert.ok(repeatedHeader, 'no RepeatedMessageResponse.MessageHeader (the spec requires it)');
  assert.deepStrictEqual(
    [repeatedHeader.MessageCategory, repeatedHeader.ServiceID, repeatedHeader.SaleID, repeatedHeader.POIID],
    [original.header.MessageCategory, original.header.ServiceID, original.header.SaleID, original.header.POIID],
    'RepeatedMessageResponse.MessageHeader is the original message header',
  );
  const bodies = repeated.RepeatedResponseMessageBody || {};
  const present = Object.keys(bodies).filter((name) => bodies[name] !== undefined);
  assert.deepStrictEqual(present, [member], 'RepeatedResponseMessageBody members');
  same(bodies[member], original.parsed, `repeated ${member} (parsed by the library)`);
  same(
    raw(wire.response, 'SaleToPOIResponse', 'TransactionStatusResponse', 'RepeatedMessageResponse', 'RepeatedResponseMessageBody', member),
    original.raw,
    `repeated ${member} (raw JSON)`,
  );
  return {
    message_reference: echoed,
    repeated_header_message_type: repeatedHeader.MessageType,
  };
}

// ---- steps ----

const results = [];

async function step(name, body) {
  const line = { step: name };
  Object.assign(wire, { status: undefined, request: undefined, response: undefined });
  try {
    Object.assign(line, (await body()) || {});
    line.ok = true;
    if (process.env.GIFTD_NODE_TRACE === '1' && wire.request !== undefined) {
      line.wire = { status: wire.status, request: wire.request, response: wire.response };
    }
  } catch (error) {
    line.ok = false;
    line.error = error instanceof assert.AssertionError
      ? `${error.message}\n actual: ${JSON.stringify(error.actual)}\n expected: ${JSON.stringify(error.expected)}`
      : `${error && error.name}: ${error && error.message}`;
    if (wire.request !== undefined) line.wire = { status: wire.status, request: wire.request, response: wire.response };
  }
  results.push(line);
  const { step: _, ok, ...rest } = line;
  console.log(JSON.stringify({ step: name, ok, ...rest }));
  return line;
}

async function main() {
  const state = {};

  await step('library_models', async () => {
    const stock = T.ObjectSerializer.serialize(paymentRequest('probe'), 'TerminalApiRequest');
    const stockLoad = T.ObjectSerializer.serialize(loadRequest('probe'), 'TerminalApiRequest');
    const stockAccount = stockLoad.SaleToPOIRequest.StoredValueRequest.StoredValueData[0].StoredValueAccountID;
    extendModels();
    const extended = T.ObjectSerializer.serialize(paymentRequest('probe'), 'TerminalApiRequest');
    const card = extended.SaleToPOIRequest.PaymentRequest.PaymentData.PaymentInstrumentData.StoredValueAccountID;
    assert.ok(card && card.StoredValueID === CARD && card.SecurityCode === CARD_CODE, 'the extended models keep the card');
    return {
      library_version: LIBRARY_VERSION,
      endpoint: terminal.terminalApiSync.endpoint,
      stock_payment_keeps_card: 'StoredValueAccountID' in stock.SaleToPOIRequest.PaymentRequest.PaymentData.PaymentInstrumentData,
      stock_account_keeps: Object.keys(stockAccount).filter((key) => stockAccount[key] !== undefined),
    };
  });

  await step('balance_before', async () => {
    const request = balanceRequest(sid('B0'));
    const answer = answerOf(await terminal.sync(request), request);
    const status = answer.BalanceInquiryResponse;
    assert.strictEqual(status.Response.Result, 'Success', `Result (${JSON.stringify(status.Response)})`);
    state.before = status.PaymentAccountStatus.CurrentBalance;
    assert.strictEqual(status.PaymentAccountStatus.Currency, CURRENCY);
    assert.ok(cents(state.before) >= cents(PAYMENT_AMOUNT), `the card holds ${state.before}, less than ${PAYMENT_AMOUNT}`);
    return { balance: state.before };
  });

  await step('a_payment', async () => {
    const serviceId = sid('P');
    const request = paymentRequest(serviceId);
    const answer = answerOf(await terminal.sync(request), request);
    const payment = answer.PaymentResponse;
    assert.ok(payment, 'no PaymentResponse');
    assert.strictEqual(payment.Response.Result, 'Success', `Result (${JSON.stringify(payment.Response)})`);
    assert.strictEqual(payment.PaymentResult.AmountsResp.AuthorizedAmount, PAYMENT_AMOUNT);
    assert.strictEqual(payment.PaymentResult.AmountsResp.Currency, CURRENCY);
    state.payment = {
      serviceId,
      header: answer.MessageHeader,
      parsed: payment,
      raw: raw(wire.response, 'SaleToPOIResponse', 'PaymentResponse'),
    };
    return {
      service_id: serviceId,
      authorized: payment.PaymentResult.AmountsResp.AuthorizedAmount,
      poi_transaction_id: payment.POIData && payment.POIData.POITransactionID && payment.POIData.POITransactionID.TransactionID,
    };
  });

  const paymentReference = () => ({ SaleID: SALE_ID, ServiceID: state.payment.serviceId, MessageCategory: 'Payment' });

  await step('b_status_of_payment', async () => {
    assert.ok(state.payment, 'step a_payment failed');
    const request = statusRequest(sid('PS'), paymentReference());
    const answer = answerOf(await terminal.sync(request), request);
    return checkRepeated(answer, paymentReference(), 'PaymentResponse', state.payment);
  });

  await step('c_load', async () => {
    const serviceId = sid('L');
    const request = loadRequest(serviceId);
    const answer = answerOf(await terminal.sync(request), request);
    const load = answer.StoredValueResponse;
    assert.ok(load, 'no StoredValueResponse');
    assert.strictEqual(load.Response.Result, 'Success', `Result (${JSON.stringify(load.Response)})`);
    const result = load.StoredValueResult[0];
    assert.strictEqual(result.StoredValueTransactionType, 'Load');
    assert.strictEqual(result.ItemAmount, LOAD_AMOUNT);
    state.load = {
      serviceId,
      header: answer.MessageHeader,
      parsed: load,
      raw: raw(wire.response, 'SaleToPOIResponse', 'StoredValueResponse'),
    };
    return {
      service_id: serviceId,
      current_balance: result.StoredValueAccountStatus && result.StoredValueAccountStatus.CurrentBalance,
    };
  });

  await step('c_status_of_load', async () => {
    assert.ok(state.load, 'step c_load failed');
    const reference = { SaleID: SALE_ID, ServiceID: state.load.serviceId, MessageCategory: 'StoredValue' };
    // With the optional fields of the spec's example: a status request may carry them.
    const request = statusRequest(sid('LS'), reference, {
      ReceiptReprintFlag: true,
      DocumentQualifier: ['CashierReceipt', 'CustomerReceipt'],
    });
    const answer = answerOf(await terminal.sync(request), request);
    return checkRepeated(answer, reference, 'StoredValueResponse', state.load);
  });

  await step('d_status_of_unknown', async () => {
    const reference = { SaleID: SALE_ID, ServiceID: sid('U'), MessageCategory: 'Payment' };
    const request = statusRequest(sid('US'), reference);
    const answer = answerOf(await terminal.sync(request), request);
    const body = answer.TransactionStatusResponse;
    assert.ok(body, 'no TransactionStatusResponse');
    assert.deepStrictEqual(
      [body.Response && body.Response.Result, body.Response && body.Response.ErrorCondition],
      ['Failure', 'NotFound'],
      'Response',
    );
    assert.strictEqual(body.RepeatedMessageResponse, undefined, 'no RepeatedMessageResponse for NotFound');
    return { additional_response: body.Response.AdditionalResponse };
  });

  await step('e_abort', async () => {
    // Names the payment's ServiceID even when that step failed.
    const request = abortRequest(sid('A'), { SaleID: SALE_ID, ServiceID: sid('P'), MessageCategory: 'Payment' });
    const returned = await terminal.sync(request);
    assert.strictEqual(wire.status, 200, 'HTTP status');
    assert.strictEqual(wire.response, '', 'the body is empty');
    assert.ok(returned instanceof T.TerminalApiResponse, 'sync returns a TerminalApiResponse');
    assert.deepStrictEqual(
      [returned.SaleToPOIResponse, returned.SaleToPOIRequest],
      [undefined, undefined],
      'an empty TerminalApiResponse',
    );
    return { http_status: wire.status, returned: util.inspect(returned, { breakLength: Infinity }) };
  });

  await step('e_status_after_abort', async () => {
    assert.ok(state.payment, 'step a_payment failed');
    const request = statusRequest(sid('AS'), paymentReference());
    const answer = answerOf(await terminal.sync(request), request);
    return checkRepeated(answer, paymentReference(), 'PaymentResponse', state.payment);
  });

  await step('f_balance_after', async () => {
    assert.ok(state.before !== undefined, 'step balance_before failed');
    const request = balanceRequest(sid('B1'));
    const answer = answerOf(await terminal.sync(request), request);
    const status = answer.BalanceInquiryResponse;
    assert.strictEqual(status.Response.Result, 'Success', `Result (${JSON.stringify(status.Response)})`);
    const moved = (state.payment ? -cents(PAYMENT_AMOUNT) : 0) + (state.load ? cents(LOAD_AMOUNT) : 0);
    assert.strictEqual(
      cents(status.PaymentAccountStatus.CurrentBalance),
      cents(state.before) + moved,
      'the balance moved by the payment and the load only',
    );
    return { before: state.before, after: status.PaymentAccountStatus.CurrentBalance, moved: moved / 100 };
  });

  const failed = results.filter((line) => !line.ok).map((line) => line.step);
  if (failed.length === 0) {
    console.log('ALL OK');
  } else {
    console.log(`FAILED: ${failed.length} of ${results.length} steps: ${failed.join(', ')}`);
    process.exitCode = 1;
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

#!/usr/bin/env node
// Checks OCPP 1.6J payloads against the OCPP 1.6 JSON schemas, independently of evsed and of
// its Python `ocpp` library, so that a bug the two share cannot hide. Run by ocpp_schema.py.
//
// Schemas: the OCPP 1.6 edition 2 (2019-12 errata) JSON schemas as shipped in ocpp-rpc, restated
// as draft-07 with ids urn:<Action>.req / urn:<Action>.conf; the 28 core operations plus the
// security whitepaper's. Validator: ajv with ajv-formats 3, whose "date-time" requires the
// RFC 3339 time offset (ajv-formats 2, which ocpp-rpc's own strict mode uses, lets a timestamp
// without one pass). Nothing here reaches the network.
//
// Protocol: one JSON object per line on stdin, one answer per line on stdout, in order.
//   -> {"action": "StatusNotification", "kind": "req" | "conf", "payload": {...}}
//   <- {"ok": true} | {"ok": false, "errors": ["/status must be equal to one of ..."]}
// The first line written is {"ready": true, "versions": {"ocpp-rpc": ..., ...}, "schemas": 78}.
'use strict';

const readline = require('node:readline');
const Ajv = require('ajv');
const addFormats = require('ajv-formats');
const schemas = require('ocpp-rpc/lib/schemas/ocpp1_6.json');

const ajv = new Ajv({
  allErrors: true,
  // An unknown keyword is an error, so that no constraint is silently ignored; javaType is
  // the one annotation the official schemas carry.
  strictSchema: true,
  keywords: ['javaType'],
  // The official schemas put "additionalProperties": false on enum strings: meaningless, harmless.
  strictTypes: false,
  // "limit" is a multipleOf 0.1: 16.1 / 0.1 is not an integer in binary floating point.
  multipleOfPrecision: 6,
});
addFormats(ajv);
// Keyed "<Action>.<kind>" rather than by ocpp-rpc's ids "urn:<Action>.req": an URN needs a
// namespace ("urn:<nid>:<nss>"), and ajv's URI library rejects these.
const keys = schemas.map(({ $id, ...schema }) => {
  const key = $id.replace(/^urn:/, '');
  ajv.addSchema(schema, key);
  return key;
});
// Compile all now: a schema the validator cannot use fails at start, not in the middle of a test.
keys.forEach((key) => ajv.getSchema(key));

function describe(error) {
  let text = `${error.instancePath || '(root)'} ${error.message}`;
  if (error.keyword === 'enum') {
    text += `: ${error.params.allowedValues.join(', ')}`;
  } else if (error.keyword === 'additionalProperties') {
    text += `: '${error.params.additionalProperty}'`;
  }
  return text;
}

function check(request) {
  const { action, kind, payload } = request;
  if (typeof action !== 'string' || (kind !== 'req' && kind !== 'conf')) {
    return { ok: false, errors: [`bad request to the validator: ${JSON.stringify(request)}`] };
  }
  const validate = ajv.getSchema(`${action}.${kind}`);
  if (!validate) {
    return { ok: false, errors: [`no OCPP 1.6 schema for ${action}.${kind}`] };
  }
  if (validate(payload)) {
    return { ok: true };
  }
  return { ok: false, errors: validate.errors.map(describe) };
}

function answer(line) {
  if (line.trim() === '') {
    return;
  }
  let result;
  try {
    result = check(JSON.parse(line));
  } catch (err) {
    result = { ok: false, errors: [`validator cannot read its input: ${err.message}`] };
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

const versions = Object.fromEntries(
  ['ocpp-rpc', 'ajv', 'ajv-formats'].map((name) => [name, require(`${name}/package.json`).version]),
);
process.stdout.write(`${JSON.stringify({ ready: true, versions, schemas: keys.length })}\n`);
readline.createInterface({ input: process.stdin, terminal: false }).on('line', answer);

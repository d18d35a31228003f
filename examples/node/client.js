#!/usr/bin/env node
// A Node.js client of search.v1.SearchService: @grpc/grpc-js with the
// contract loaded from proto/ at run time by @grpc/proto-loader (no
// generated code). It finds a server through Consul DNS, as search-client
// does (SRV for the port, then A for the address), or takes --addr.
//
//   node client.js [--addr HOST:PORT | --consul-dns 127.0.0.1:8600 --service search-service] COMMAND
//
//   point LAT LNG          things containing the point
//   query TEXT [SIZE]      every thing whose name contains TEXT, page by page
//   stream TEXT            every thing whose name contains TEXT, streamed
//   locate [--collection NAME]... [--limit N] [ID,LAT,LNG ...]
//                          the things containing each point, through one
//                          Locate stream (a few sample points when none)
//   demo                   the four above for Paris, "an" and the samples
//
// point, query and stream print one line per thing, "ID<TAB>NAME"; locate
// prints one answer per point, in input order, as one JSON line (the
// protojson form of LocateResponse, as search-client locate writes it). On
// error it prints "Code: message" on stderr with exit status 1, like
// search-client.
'use strict';

const path = require('path');
const { once } = require('events');
const dns = require('dns').promises;
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const protoDir = path.join(__dirname, '..', '..', 'proto');
const definition = protoLoader.loadSync(path.join(protoDir, 'search', 'v1', 'search.proto'), {
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [protoDir],
});
const { SearchService } = grpc.loadPackageDefinition(definition).search.v1;

// codeName turns grpc-js's numeric status into search-client's spelling:
// 3 -> INVALID_ARGUMENT -> InvalidArgument.
function codeName(code) {
  const name = Object.keys(grpc.status).find((k) => grpc.status[k] === code) || String(code);
  return name.toLowerCase().replace(/(^|_)([a-z])/g, (_, __, c) => c.toUpperCase());
}

// discover asks Consul DNS for a healthy instance: SRV, then A.
async function discover(dnsServer, service) {
  const resolver = new dns.Resolver();
  resolver.setServers([dnsServer]);
  let records = [];
  try {
    records = await resolver.resolveSrv(`${service}.service.consul`);
  } catch (err) {
    if (err.code !== 'ENOTFOUND' && err.code !== 'ENODATA') throw err;
  }
  if (records.length === 0) {
    throw new Error(`no healthy instance of "${service}" found through Consul DNS at ${dnsServer}`);
  }
  const srv = records[Math.floor(Math.random() * records.length)];
  const [ip] = await resolver.resolve4(srv.name);
  return `${ip}:${srv.port}`;
}

function call(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + 30000 }, (err, resp) => (err ? reject(err) : resolve(resp)));
  });
}

function print(things) {
  for (const t of things) console.log(`${t.id}\t${t.name}`);
}

async function point(client, lat, lng) {
  const resp = await call(client, 'Search', { point: { lat: Number(lat), lng: Number(lng) } });
  print(resp.things);
}

async function query(client, text, size) {
  let token = '';
  do {
    const resp = await call(client, 'Search', { query: text, page_size: Number(size || 10), page_token: token });
    print(resp.things);
    token = resp.next_page_token;
  } while (token);
}

function stream(client, text) {
  return new Promise((resolve, reject) => {
    const s = client.SearchStream({ query: text }, { deadline: Date.now() + 30000 });
    s.on('data', (t) => print([t]));
    s.on('error', reject);
    s.on('end', resolve);
  });
}

// LOCATE_WINDOW is the most points sent ahead of the answers read. A Locate
// stream answers every point, in order; a client that keeps sending without
// reading would only fill buffers (the server stops reading once its answers
// are not taken), so the sender waits for answers instead.
const LOCATE_WINDOW = 64;

// samplePoints are what locate sends when given none: inside France, in the
// sea, and one bad point, which gets an error in its own answer while the
// stream goes on.
const samplePoints = ['paris,48.85,2.35', 'berlin,52.52,13.4', 'sea,0,-30', 'bad,91,0', 'nairobi,-1.29,36.82'];

// jsonValue and jsonStruct turn a google.protobuf.Struct as proto-loader
// decodes it ({fields: {k: {kind: 'stringValue', stringValue: ...}}}) into
// the plain JSON that is its protojson form.
function jsonValue(v) {
  switch (v.kind) {
    case 'structValue': return jsonStruct(v.structValue);
    case 'listValue': return (v.listValue.values || []).map(jsonValue);
    case 'nullValue': case undefined: return null;
    default: return v[v.kind];
  }
}

function jsonStruct(s) {
  return s ? Object.fromEntries(Object.entries(s.fields || {}).map(([k, v]) => [k, jsonValue(v)])) : null;
}

// answerJSON is a LocateResponse in protojson form (proto field names, which
// protojson accepts as well as lowerCamelCase).
function answerJSON(resp) {
  return JSON.stringify({ id: resp.id, ...resp, things: resp.things.map((t) => ({ ...t, properties: jsonStruct(t.properties) })) });
}

// locate sends every point through one Locate stream, the scope once in the
// first message's options, and prints the answers as they come. It keeps at
// most LOCATE_WINDOW points unanswered, and also waits when grpc-js's write
// buffer is full ('drain'), so memory stays bounded whatever the number of
// points.
async function locate(client, args) {
  const options = { collections: [], limit: 0 };
  const points = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--collection') options.collections.push(args[++i]);
    else if (args[i] === '--limit') options.limit = Number(args[++i]);
    else points.push(args[i]);
  }
  const call = client.Locate({ deadline: Date.now() + 30000 });
  let answered = 0;
  let failed = null;
  let wake = () => {};
  const finished = new Promise((resolve) => {
    call.on('data', (resp) => {
      answered++;
      console.log(answerJSON(resp));
      wake();
    });
    call.on('error', (err) => { failed = err; wake(); resolve(); });
    call.on('end', resolve);
  });
  const write = async (msg) => {
    if (!call.write(msg)) await once(call, 'drain');
  };
  try {
    await write({ options }); // the scope of every point; no point in it
    let sent = 0;
    for (const p of points.length > 0 ? points : samplePoints) {
      while (sent - answered >= LOCATE_WINDOW && !failed) await new Promise((resolve) => { wake = resolve; });
      if (failed) break;
      const [id, lat, lng] = p.split(',');
      await write({ id, point: { lat: Number(lat), lng: Number(lng) } });
      sent++;
    }
    call.end();
  } catch (err) {
    failed = failed || err;
  }
  await finished;
  if (failed) throw failed;
}

async function main(argv) {
  const opts = { consulDns: process.env.CONSUL_DNS_ADDR || '127.0.0.1:8600', service: process.env.SERVICE_NAME || 'search-service', addr: process.env.SEARCH_ADDR || '' };
  while (argv[0] && argv[0].startsWith('--')) {
    const flag = argv.shift();
    const value = argv.shift();
    if (flag === '--addr') opts.addr = value;
    else if (flag === '--consul-dns') opts.consulDns = value;
    else if (flag === '--service') opts.service = value;
    else throw new Error(`unknown flag ${flag}`);
  }
  const addr = opts.addr || (await discover(opts.consulDns, opts.service));
  const client = new SearchService(addr, grpc.credentials.createInsecure());
  try {
    const [command, ...args] = argv;
    switch (command) {
      case 'point': return await point(client, args[0], args[1]);
      case 'query': return await query(client, args[0], args[1]);
      case 'stream': return await stream(client, args[0]);
      case 'locate': return await locate(client, args);
      case 'demo':
        console.log('# point 48.85, 2.35'); await point(client, 48.85, 2.35);
        console.log('# query "an", pages of 10'); await query(client, 'an', 10);
        console.log('# stream "an"'); await stream(client, 'an');
        console.log('# locate', samplePoints.join(' ')); return await locate(client, []);
      default: throw new Error('usage: client.js [--addr HOST:PORT] point LAT LNG | query TEXT [SIZE] | stream TEXT | locate [--collection NAME]... [--limit N] [ID,LAT,LNG ...] | demo');
    }
  } finally {
    client.close();
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err.code !== undefined && typeof err.code === 'number' ? `${codeName(err.code)}: ${err.details}` : err.message);
  process.exit(1);
});

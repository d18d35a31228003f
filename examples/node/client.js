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
//   demo                   the three above for Paris and "an"
//
// It prints one line per thing, "ID<TAB>NAME", and on error "Code: message"
// on stderr with exit status 1, like search-client.
'use strict';

const path = require('path');
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
      case 'demo':
        console.log('# point 48.85, 2.35'); await point(client, 48.85, 2.35);
        console.log('# query "an", pages of 10'); await query(client, 'an', 10);
        console.log('# stream "an"'); return await stream(client, 'an');
      default: throw new Error('usage: client.js [--addr HOST:PORT] point LAT LNG | query TEXT [SIZE] | stream TEXT | demo');
    }
  } finally {
    client.close();
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err.code !== undefined && typeof err.code === 'number' ? `${codeName(err.code)}: ${err.details}` : err.message);
  process.exit(1);
});

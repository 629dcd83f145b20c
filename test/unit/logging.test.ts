import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { httpLogLevel, requestIdOf } from '../../src/config/logging';
import { routeOf } from '../../src/controllers/http-request-metrics';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('requestIdOf', () => {
  it('keeps an incoming x-request-id of visible ASCII characters', () => {
    for (const id of ['abc-123', 'a', '0f8fad5b-d9cb-469f-a165-70867728950e', 'trace:1/2=x', 'x'.repeat(128)])
      assert.equal(requestIdOf(id), id);
  });

  it('generates a UUID when there is none, or when it is empty, too long, repeated or not printable ASCII', () => {
    for (const header of [undefined, '', 'x'.repeat(129), ['a', 'b'], 'has space', 'line\nbreak', 'tab\t', 'ünïcode']) {
      assert.match(requestIdOf(header), UUID, JSON.stringify(header));
    }
    assert.notEqual(requestIdOf(undefined), requestIdOf(undefined));
  });
});

describe('httpLogLevel', () => {
  it('logs requests at info and server errors at error', () => {
    assert.equal(httpLogLevel('/api/operations', 201), 'info');
    assert.equal(httpLogLevel('/api/operations/7?x=1', 404), 'info');
    assert.equal(httpLogLevel('/api/operations', 500), 'error');
    assert.equal(httpLogLevel('/api/operations', 200, new Error('aborted')), 'error');
  });

  it('logs successful probes and scrapes at debug, failed ones at warn', () => {
    for (const url of ['/health', '/health/', '/health/live', '/metrics', '/metrics?x=1']) {
      assert.equal(httpLogLevel(url, 200), 'debug', url);
      assert.equal(httpLogLevel(url, 503), 'warn', url);
    }
    assert.equal(httpLogLevel('/healthz', 200), 'info');
    assert.equal(httpLogLevel('/api/metrics', 200), 'info');
  });
});

describe('routeOf', () => {
  it('is the declared route, so that ids do not become label values, or unmatched', () => {
    assert.equal(routeOf({ baseUrl: '', route: { path: '/api/operations/:id' } }), '/api/operations/:id');
    assert.equal(routeOf({ baseUrl: '/v1', route: { path: '/stats' } }), '/v1/stats');
    assert.equal(routeOf({ baseUrl: '' }), 'unmatched');
  });
});

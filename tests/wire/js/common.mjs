// Shared by the SDK scripts: a client built from the environment, and one JSON line of output.
//
// The gateway's address and key come from ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY, the two
// variables a user changes. Every request the client sends is noted (method, URL, headers) so the
// tests can check what went over the wire, not only what came back.
import Anthropic from '@anthropic-ai/sdk';

export const sent = [];

function recordingFetch(input, init = {}) {
  const url = typeof input === 'string' ? input : input.url;
  const headers = Object.fromEntries(new Headers(init.headers ?? {}).entries());
  sent.push({ method: init.method ?? 'GET', url, headers });
  return fetch(input, init);
}

// A client with no retries (a test sees each answer as it came) and the recording fetch.
export function makeClient(options = {}) {
  return new Anthropic({ maxRetries: 0, fetch: recordingFetch, ...options });
}

// The key without the credential options: for clients given another credential explicitly.
export function envKey() {
  const key = process.env.ANTHROPIC_API_KEY;
  if (!key) throw new Error('ANTHROPIC_API_KEY is not set');
  return key;
}

// The error as the SDK classified it, for tests that check the mapping.
export function describeError(error) {
  if (!(error instanceof Anthropic.APIError)) throw error;
  return {
    class: error.constructor.name,
    status: error.status ?? null,
    type: error.error?.error?.type ?? null,
    message: error.error?.error?.message ?? null,
    requestID: error.requestID ?? null,
  };
}

export function print(result) {
  process.stdout.write(JSON.stringify({ result, sent }) + '\n');
}

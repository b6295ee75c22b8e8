// The key passed as `authToken` (Authorization: Bearer), the way OAuth-style users configure it.
import { envKey, makeClient, print } from './common.mjs';

const client = makeClient({ apiKey: null, authToken: envKey() });
const message = await client.messages.create({
  model: 'claude-haiku-4-5',
  max_tokens: 100,
  messages: [{ role: 'user', content: 'Hello' }],
});
print({ message });

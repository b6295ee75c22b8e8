// messages.create without streaming; prints the message and the request-id response header.
import { makeClient, print } from './common.mjs';

const client = makeClient();
const { data: message, response } = await client.messages
  .create({
    model: 'claude-sonnet-4-6',
    max_tokens: 100,
    messages: [{ role: 'user', content: 'Hello' }],
  })
  .withResponse();
print({ message, requestId: response.headers.get('request-id') });

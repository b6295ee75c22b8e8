// client.messages.stream(...) with one tool offered; argv[2] is the user's prompt.
// Prints the text as the `text` events delivered it and the final message the SDK assembled
// (tool_use input parsed from the input_json_delta pieces).
import { makeClient, print } from './common.mjs';

const prompt = process.argv[2] ?? 'Hello';
const client = makeClient();
const stream = client.messages.stream({
  model: 'claude-sonnet-4-6',
  max_tokens: 1024,
  messages: [{ role: 'user', content: prompt }],
  tools: [
    {
      name: 'get_weather',
      description: 'The current weather in a city',
      input_schema: {
        type: 'object',
        properties: { city: { type: 'string' }, unit: { type: 'string' } },
        required: ['city'],
      },
    },
  ],
});
const events = [];
let text = '';
stream.on('streamEvent', (event) => events.push(event.type));
stream.on('text', (delta) => {
  text += delta;
});
const message = await stream.finalMessage();
const { response } = await stream.withResponse();
print({
  text,
  events,
  message,
  contentType: response.headers.get('content-type'),
  requestId: response.headers.get('request-id'),
});

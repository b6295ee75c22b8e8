// messages.countTokens with a system prompt and a tool, as the SDKs and Claude Code send it.
import { makeClient, print } from './common.mjs';

const client = makeClient();
const counted = await client.messages.countTokens({
  model: 'claude-sonnet-4-6',
  system: 'You are a terse assistant.',
  messages: [{ role: 'user', content: 'How many tokens is this question, roughly?' }],
  tools: [{ name: 'noop', description: 'Does nothing', input_schema: { type: 'object' } }],
});
print(counted);

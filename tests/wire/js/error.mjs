// One messages.create expected to fail; argv[2] is the model, argv[3] the prompt. Prints the
// error class the SDK chose and what it read from the answer.
import { describeError, makeClient, print } from './common.mjs';

const [model, prompt] = process.argv.slice(2);
const client = makeClient();
try {
  const message = await client.messages.create({
    model,
    max_tokens: 100,
    messages: [{ role: 'user', content: prompt }],
  });
  print({ unexpectedSuccess: message });
} catch (error) {
  print(describeError(error));
}

/**
 * Loaded before every test file (`npm test` passes it with --import). fast-check's default size
 * ('small') generates at most about 10 elements per array whatever `maxLength` says, so a
 * property over "up to 400 operations" or "bodies up to 600 bytes" would only ever see ten.
 * 'medium' (about 100) makes the stated bounds mean something at a few seconds' cost; a test that
 * wants its whole range asks for `size: 'max'` itself.
 */
import fc from 'fast-check';

fc.configureGlobal({ baseSize: 'medium' });

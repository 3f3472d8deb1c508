// Strings from files, bundles and servers (entry names, bundle names, server messages) can hold terminal control
// sequences: `ESC [2J` clears the screen, `ESC ]0;… BEL` retitles the window, others rewrite what was printed.
// Everything airpack prints for a person goes through this one function at the printing layer (BaseCommand's
// output and error rendering, the stderr logger), so no call site has to remember it. `--json` output needs
// nothing more: JSON.stringify already escapes control characters (`\u001b`).

// C0 controls except tab and newline (which airpack's own multi-line messages use), DEL, and the C1 controls
// (U+0080–U+009F, of which U+009B is a one-character CSI on many terminals).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g

/** `\x1b[2J` → the six visible characters `\x1b[2J`; text without control characters is returned unchanged. */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

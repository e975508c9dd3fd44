// A small reader of the add-on's gettext catalogs (msgid/msgstr pairs, one line each), for the
// tests: the messages Volto's i18n would hand to react-intl.
import fs from 'fs';
import path from 'path';

export const LOCALES = ['en', 'de', 'fi'];

function unquote(line, keyword) {
  return JSON.parse(line.slice(keyword.length).trim());
}

export function readPo(file) {
  const entries = {};
  let id = null;
  for (const line of fs.readFileSync(file, 'utf-8').split('\n')) {
    if (line.startsWith('msgid ')) {
      id = unquote(line, 'msgid');
    } else if (line.startsWith('msgstr ') && id !== null) {
      entries[id] = unquote(line, 'msgstr');
      id = null;
    }
  }
  delete entries[''];
  return entries;
}

export function poPath(locale) {
  return path.join(__dirname, '..', 'locales', locale, 'LC_MESSAGES', 'volto.po');
}

/** react-intl messages of a locale: its translations, English (the id) where empty. */
export function catalog(locale) {
  const entries = readPo(poPath(locale));
  return Object.fromEntries(Object.entries(entries).map(([id, text]) => [id, text || id]));
}

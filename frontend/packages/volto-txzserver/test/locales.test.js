import messages from '../src/messages';
import { LOCALES, poPath, readPo } from './po';
import path from 'path';

const ids = Object.values(messages).map((m) => m.id);

describe('translations', () => {
  it('every message has an id equal to its English default (Volto convention)', () => {
    for (const m of Object.values(messages)) {
      expect(m.defaultMessage).toBe(m.id);
    }
  });

  it('the template lists every message, and nothing else', () => {
    const template = readPo(path.join(__dirname, '..', 'locales', 'volto.pot'));
    expect(Object.keys(template).sort()).toEqual([...ids].sort());
  });

  it.each(LOCALES)('%s has every message, translated (en: the default)', (locale) => {
    const entries = readPo(poPath(locale));
    expect(Object.keys(entries).sort()).toEqual([...ids].sort());
    for (const id of ids) {
      if (locale === 'en') {
        expect(entries[id]).toBe('');
      } else {
        expect(entries[id]).not.toBe('');
        // the same placeholders as the English text
        const names = (text) => (text.match(/\{\w+\}/g) || []).sort();
        expect(names(entries[id])).toEqual(names(id));
      }
    }
  });
});

// Plain jest in Node: the add-on's logic is in modules without React or a browser, and the
// components render with react-test-renderer. Volto's own modules are replaced by the small
// stand-ins in test/volto (see the README for why Volto itself is not installed here).
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  moduleNameMapper: {
    '^@plone/volto/(.*)$': '<rootDir>/test/volto/$1',
  },
  transform: { '\\.[jt]sx?$': 'babel-jest' },
  collectCoverageFrom: ['src/**/*.{js,jsx}'],
};

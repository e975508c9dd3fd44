// For the tests only: a Volto project compiles the add-on with its own Babel setup.
module.exports = {
  presets: [
    ['@babel/preset-env', { targets: { node: 'current' } }],
    '@babel/preset-react',
  ],
};

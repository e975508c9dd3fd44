// For the tests only: a Volto project compiles the add-on with its own Babel setup. Node runs
// the syntax as it is; Babel only turns JSX and ES modules into what jest loads.
module.exports = {
  presets: ['@babel/preset-react'],
  plugins: ['@babel/plugin-transform-modules-commonjs'],
};

// Volto's own build configuration. It reads volto.config.js for the add-ons and compiles them
// from source (each add-on's folder is in babel's include list). One change: Semantic UI's
// theme.config is Volto's own; the default would be this app's theme/theme.config, which only
// a project that changes the theme needs.
const volto = require('@plone/volto/razzle.config');

module.exports = {
  ...volto,
  modifyWebpackConfig: (options) => {
    const config = volto.modifyWebpackConfig(options);
    config.resolve.alias['../../theme.config$'] = require.resolve(
      '@plone/volto/theme/theme.config',
    );
    return config;
  },
};

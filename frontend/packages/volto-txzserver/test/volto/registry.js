// Stand-in for @plone/volto/registry: the configuration object the tests set.
const config = { settings: {} };
export default config;

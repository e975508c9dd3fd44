// The add-ons of this Volto app, in the order their applyConfig runs.
module.exports = {
  addons: ['volto-txzserver'],
};

// Filled by its feature: see features.js for the contract.
export function start(viewer) {}

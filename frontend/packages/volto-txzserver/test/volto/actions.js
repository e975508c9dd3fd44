// Stand-in for Volto's getContent action creator.
export function getContent(url) {
  return { type: 'GET_CONTENT', url };
}

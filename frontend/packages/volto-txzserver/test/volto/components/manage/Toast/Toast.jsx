import React from 'react';
// Stand-in for Volto's Toast: the same props (title, content, info/success/warning/error).
const Toast = ({ title, content, info, success, warning, error }) => {
  const kind = (info && 'info') || (success && 'success') || (warning && 'warning') || (error && 'error');
  return (
    <div className={`volto-toast ${kind || ''}`}>
      {title && <h4>{title}</h4>}
      <div>{content}</div>
    </div>
  );
};
export default Toast;

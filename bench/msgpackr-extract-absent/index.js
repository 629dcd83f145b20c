throw new Error('msgpackr-extract is not installed: msgpackr decodes in JavaScript');

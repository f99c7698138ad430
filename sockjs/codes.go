package sockjs

// Close codes and reasons Shoal sends in SockJS close frames (c[code,"reason"])
// and websocket close frames. 1xxx and 2010 come from the SockJS protocol;
// 3000-3999 is for applications and libraries: Shoal uses 3001-3099 and
// leaves the rest (3000 included, the protocol's "Go away!") to handlers.
const (
	CodeNormal            = 1000 // Session.Close without a code, clean websocket close
	CodeGoingAway         = 1001 // the node is shutting down
	CodeInterrupted       = 1002 // the client went away while a receiver was attached
	CodeInvalidUTF8       = 1007 // a websocket text message that is not UTF-8
	CodeMessageTooBig     = 1009 // an incoming frame or body exceeded MaxMessageSize
	CodeAnotherConnection = 2010 // a second receiver while one is attached
	CodeBrokenFraming     = 3001 // a websocket frame that is not valid JSON
	CodeOpenRejected      = 3002 // Handler.OnOpen returned an error
	CodeQueueOverflow     = 3009 // too much waiting (MaxQueuedMessages, MaxQueuedBytes)
)

// Reasons that go with the codes above.
const (
	ReasonNormal            = "Normal closure"
	ReasonGoingAway         = "Going away"
	ReasonInterrupted       = "Connection interrupted"
	ReasonInvalidUTF8       = "Invalid UTF-8"
	ReasonMessageTooBig     = "Message too big"
	ReasonAnotherConnection = "Another connection still open"
	ReasonBrokenFraming     = "Broken framing"
	ReasonOpenRejected      = "Open rejected"
	ReasonQueueOverflow     = "Queue overflow"
)

// CloseError carries a close code and reason. Handler.OnOpen may return one
// to choose what the client is told; any other error closes the session
// with CodeOpenRejected.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string { return "sockjs: session closed: " + e.Reason }

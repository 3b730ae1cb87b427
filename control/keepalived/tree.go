package keepalived

import "strings"

// node is one statement: its words and, if a '{' followed it, the statements
// of its block.
type node struct {
	pos      Pos
	words    []string
	hasBlock bool
	block    []*node
}

// keyword is the statement's first word.
func (n *node) keyword() string { return n.words[0] }

// args are the words after the keyword.
func (n *node) args() []string { return n.words[1:] }

// text is the statement as a message repeats it, without its block.
func (n *node) text() string { return shorten(strings.Join(n.words, " ")) }

// maxDepth bounds block nesting; keepalived's deepest (virtual_server →
// real_server → HTTP_GET → url) is 4.
const maxDepth = 64

// build turns lines into a tree: a "{" opens the block of the statement
// before it (on the same line or the one before), a "}" closes it.
func build(lines []line) ([]*node, error) {
	type level struct {
		owner *node // nil at the top
		nodes []*node
	}
	stack := []level{{}}
	for _, l := range lines {
		top := &stack[len(stack)-1]
		switch l.words[0] {
		case "{":
			if len(top.nodes) == 0 || top.nodes[len(top.nodes)-1].hasBlock {
				return nil, &SyntaxError{l.pos, "'{' opens no block: no keyword before it"}
			}
			if len(stack) > maxDepth {
				return nil, &SyntaxError{l.pos, "blocks nest too deep"}
			}
			owner := top.nodes[len(top.nodes)-1]
			owner.hasBlock = true
			stack = append(stack, level{owner: owner})
		case "}":
			if len(stack) == 1 {
				return nil, &SyntaxError{l.pos, "'}' closes no block"}
			}
			top.owner.block = top.nodes
			stack = stack[:len(stack)-1]
		default:
			top.nodes = append(top.nodes, &node{pos: l.pos, words: l.words})
		}
	}
	if len(stack) > 1 {
		o := stack[len(stack)-1].owner
		return nil, &SyntaxError{o.pos, "block of " + shorten(o.words[0]) + " is not closed: missing '}'"}
	}
	return stack[0].nodes, nil
}

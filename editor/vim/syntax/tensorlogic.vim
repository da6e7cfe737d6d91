" Vim syntax file
" Language:    Tensor logic (Domingos, "Tensor Logic: The Language of AI"), *.tl
" Maintainer:  the tensorlogic project (editor/vim in its repository)
"
" Capitalised names are tensors (Name[...] numeric, Name(...) a relation); inside their brackets a
" capitalised name is a constant symbol. Lower-case names are index variables, or functions before `(`.

if exists('b:current_syntax')
  finish
endif
let s:cpo_save = &cpo
set cpo&vim

syn case match

" Later definitions win when two items start at the same column, so the order below matters.
syn match tlTerminator      "[.;]"
syn match tlVar             "\<[a-z_]\w*'*"
syn match tlName            "\<\u\w*'*"
syn match tlTensor          "\<\u\w*'*\ze\s*\[" nextgroup=tlIndexList skipwhite
syn match tlRelation        "\<\u\w*'*\ze\s*(" nextgroup=tlIndexParens skipwhite
syn match tlFunction        "\<[a-z_]\w*\ze\s*("
syn match tlBuiltin         "\<\%(step\|sig\|relu\|tanh\|exp\|log\|sqrt\|abs\|sin\|cos\|softmax\|lnorm\|concat\)\ze\s*("
syn match tlNot             "\<not\ze\s\+\u"
syn match tlOperator        "[-+*/^%]"
syn match tlAssign          "\<\%(max\|min\|avg\)=\|+=\|="
syn match tlCompare         "!=\|==\|<=\|>=\|<\|>"
syn match tlRule            "<-\|:-"
syn match tlQuery           "?"
syn match tlContinuation    "\\\ze\s*$"

syn match tlInteger         "\<\d\+\>"
syn match tlFloat           "\<\d\+\.\d\+\%([eE][+-]\=\d\+\)\=\>"
syn match tlFloat           "\<\d\+[eE][+-]\=\d\+\>"
syn match tlFloat           "\%(\w\)\@<!\.\d\+\%([eE][+-]\=\d\+\)\=\>"

" Index lists: T[i, j+1, *t, p'., Alice, "New York", 2:5] and R(x, y).
syn region tlIndexList   contained matchgroup=tlBracket start="\[" end="\]" contains=@tlIndex
syn region tlIndexParens contained matchgroup=tlBracket start="(" end=")" contains=@tlIndex
syn region tlIndexGroup  contained matchgroup=tlBracket start="(" end=")" contains=@tlIndex
syn match tlIndexVar     contained "\<[a-z_]\w*'*"
syn match tlSymbol       contained "\<\u\w*'*"
syn match tlVirtual      contained "\*\ze\s*[a-z_(]"
syn match tlNormalize    contained "\%(\w\|'\)\@<=\.\ze\s*[,\])]"
syn match tlSlice        contained ":"
syn match tlIndexOp      contained "[-+/%]"
syn cluster tlIndex contains=tlIndexVar,tlSymbol,tlInteger,tlString,tlVirtual,tlNormalize,tlSlice,tlIndexOp,tlIndexGroup,tlComment,tlContinuation

" Declarations at the start of a statement.
syn match tlDeclare      "\%(\%(^\|[;.]\)\s*\)\@<=\%(tensor\|index\|domain\|set\)\>\ze\s\+\a"
syn match tlImport       "\%(\%(^\|[;.]\)\s*\)\@<=\%(import\|use\|module\)\>"
syn match tlModule       "\%(\%(^\|[;.]\)\s*\%(import\|use\|module\)\s\+\)\@<=[A-Za-z_][A-Za-z0-9_.]*"
syn match tlModifier     "\%(\%(^\|[;.]\)\s*tensor\>.*\)\@<=\<\%(const\|learnable\|sparse\|dense\|bool\|real\)\>"
syn match tlDomainName   "\%(\%(^\|[;.]\)\s*domain\s\+\)\@<=\u\w*'*"
syn match tlDomainSymbol "\%(\%(^\|[;.]\)\s*domain\s\+\u\w*'*\s*:[^;#]*\)\@<=\<\a\w*'*"
syn match tlSetting      "\%(\%(^\|[;.]\)\s*set\s\+\)\@<=[a-z_]\w*"

syn region tlString      start=+"+ skip=+\\.+ end=+"+ end=+$+ contains=tlEscape
syn match tlEscape       contained "\\."
syn keyword tlTodo       contained TODO FIXME XXX NOTE
syn match tlComment      "#.*$" contains=tlTodo,@Spell

hi def link tlComment      Comment
hi def link tlTodo         Todo
hi def link tlString       String
hi def link tlEscape       SpecialChar
hi def link tlInteger      Number
hi def link tlFloat        Float
hi def link tlTensor       Type
hi def link tlRelation     Structure
hi def link tlName         Type
hi def link tlSymbol       Constant
hi def link tlVar          Identifier
hi def link tlIndexVar     Identifier
hi def link tlFunction     Function
hi def link tlBuiltin      Function
hi def link tlDeclare      Keyword
hi def link tlImport       Include
hi def link tlModule       Identifier
hi def link tlModifier     StorageClass
hi def link tlDomainName   Type
hi def link tlDomainSymbol Constant
hi def link tlSetting      Identifier
hi def link tlNot          Keyword
hi def link tlOperator     Operator
hi def link tlIndexOp      Operator
hi def link tlAssign       Operator
hi def link tlCompare      Operator
hi def link tlRule         Operator
hi def link tlQuery        Special
hi def link tlVirtual      Special
hi def link tlNormalize    Special
hi def link tlSlice        Delimiter
hi def link tlBracket      Delimiter
hi def link tlTerminator   Delimiter
hi def link tlContinuation Special

syn sync minlines=100

let b:current_syntax = 'tensorlogic'
let &cpo = s:cpo_save
unlet s:cpo_save
